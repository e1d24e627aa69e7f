namespace Nabla.Kernels.Cpu;

/// <summary>
/// A parallel task whose work is written once, generic over the vector width: <see cref="Execute{V}"/> runs with
/// V512, V256 or V1 according to the instruction set in effect when the task was launched
/// (<see cref="Capture"/>), whichever thread runs it.
/// </summary>
internal abstract class VectorTask : IParallelTask
{
    private Isa _isa;

    /// <summary>Call when launching: fixes the vector width the task's items will use.</summary>
    public void Capture() => _isa = CpuFeatures.Effective;

    public void Execute(int item)
    {
        switch (_isa)
        {
            case Isa.Avx512: Execute<V512>(item); break;
            case Isa.Avx2: Execute<V256>(item); break;
            default: Execute<V1>(item); break;
        }
    }

    protected abstract void Execute<V>(int item) where V : struct, IVec<V>;
}
