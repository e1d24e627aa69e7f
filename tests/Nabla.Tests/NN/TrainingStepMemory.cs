using Nabla.Models.Gpt2;
using Nabla.Optim;

namespace Nabla.Tests.NN;

/// <summary>The tensor memory of one training step of a GPT-2 (next-token loss, backward, an AdamW step on the
/// parameters that train), counted by the buffer pool (<see cref="BufferPool.PeakLiveBytes"/>): byte counts of the
/// engine's tensors, the same on every run and machine, unlike timings or the process's resident memory. Run it in a
/// serial test collection: the pool's counters are the whole process's.</summary>
internal static class TrainingStepMemory
{
    /// <summary>Builds a model with <paramref name="build"/> and trains it two steps on ids (B, T + 1).</summary>
    /// <returns>Resident: the bytes held between steps (weights, gradients, optimizer state); Peak: the most held
    /// during the second step (the first one creates the optimizer's state); both above what was live before the
    /// model existed. The model, for what the caller counts besides tensors.</returns>
    public static (long Resident, long Peak, Gpt2Model Model) Measure(Func<Gpt2Model> build, Tensor ids)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long before = BufferPool.LiveBytes;
        var model = build();
        var optimizer = new AdamW(model.Parameters().Where(p => p.RequiresGrad), 1e-3f);
        int t = ids.Size(1) - 1;
        void Step()
        {
            using var _ = MemoryScope.Begin();
            optimizer.ZeroGrad();
            Gpt2Model.Loss(model.Forward(ids.Slice(1, 0, t)), ids.Slice(1, 1, t + 1)).Backward();
            optimizer.Step();
        }
        Step();
        GC.Collect();
        GC.WaitForPendingFinalizers(); // what build() dropped (a quantised model's float weights)
        BufferPool.ResetPeak();
        long resident = BufferPool.LiveBytes - before;
        Step();
        return (resident, BufferPool.PeakLiveBytes - before, model);
    }
}
