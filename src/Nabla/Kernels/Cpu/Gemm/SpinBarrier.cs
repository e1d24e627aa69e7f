namespace Nabla.Kernels.Cpu.Gemm;

/// <summary>
/// A reusable barrier for the threads of one GEMM team, which all run at once (see
/// <see cref="WorkerPool.ConcurrentThreads"/>). Waiters spin, then yield: phases last tens of microseconds or more,
/// and a kernel thread must not sleep on a machine where the next phase starts right away. A member that fails
/// breaks the barrier so the others stop waiting for it.
/// </summary>
internal sealed class SpinBarrier
{
    private int _members;
    private int _arrived;
    private int _phase;
    private volatile bool _broken;

    public void Reset(int members)
    {
        _members = members;
        _arrived = 0;
        _broken = false;
    }

    public void SignalAndWait()
    {
        int phase = Volatile.Read(ref _phase);
        if (Interlocked.Increment(ref _arrived) == _members)
        {
            // Last to arrive: reopen for the next phase, then release the others.
            Volatile.Write(ref _arrived, 0);
            Interlocked.Increment(ref _phase);
            return;
        }
        var spin = new SpinWait();
        while (Volatile.Read(ref _phase) == phase)
        {
            if (_broken) throw new OperationCanceledException("Another thread of the GEMM team failed.");
            spin.SpinOnce(sleep1Threshold: -1);
        }
    }

    public void Break() => _broken = true;
}
