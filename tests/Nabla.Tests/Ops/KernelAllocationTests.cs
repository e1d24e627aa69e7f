using Nabla.Kernels;
using Nabla.Kernels.Cpu;

namespace Nabla.Tests.Ops;

/// <summary>
/// Once warm, the attention, convolution, pooling and batch-norm kernels allocate no managed memory per call: their
/// parallel tasks are reused objects and their scratch is per-thread native memory. Measured on one thread
/// (allocations are counted per thread), under each instruction set the CPU has.
/// </summary>
[Collection(Nabla.Tests.Kernels.KernelSettingsCollection.Name)]
public unsafe class KernelAllocationTests
{
    private static readonly IKernelBackend Cpu = CpuBackend.Instance;

    private static long AllocatedBytes(Action kernelCalls)
    {
        int threads = WorkerPool.Threads;
        WorkerPool.Threads = 1;
        try
        {
            long worst = 0;
            foreach (var isa in Nabla.Tests.Kernels.TestIsas.Available)
            {
                using var _ = CpuFeatures.Limit(isa);
                kernelCalls(); // warm: tasks created, scratch grown, code jitted
                long before = GC.GetAllocatedBytesForCurrentThread();
                kernelCalls();
                worst = Math.Max(worst, GC.GetAllocatedBytesForCurrentThread() - before);
            }
            return worst;
        }
        finally { WorkerPool.Threads = threads; }
    }

    [Fact]
    public void AttentionKernelsAllocateNothingOnceWarm()
    {
        int B = 2, H = 2, T = 100, D = 40;
        var g = new Generator(1);
        var (q, k, v, dout) = (Tensor.Randn(g, B, H, T, D), Tensor.Randn(g, B, H, T, D), Tensor.Randn(g, B, H, T, D), Tensor.Randn(g, B, H, T, D));
        var (o, dq, dk, dv) = (Tensor.Empty([B, H, T, D]), Tensor.Empty([B, H, T, D]), Tensor.Empty([B, H, T, D]), Tensor.Empty([B, H, T, D]));
        var lse = Tensor.Empty([B, H, T]);
        var rows = new RowStrides((long)H * T * D, (long)T * D, D);
        var layout = new AttentionLayout(B, H, T, T, D, 0.125f, true, rows, rows, rows, rows);
        long bytes = AllocatedBytes(() =>
        {
            Cpu.Attention(layout, q.Data, k.Data, v.Data, o.Data, lse.Data);
            Cpu.AttentionBackward(layout, q.Data, k.Data, v.Data, o.Data, lse.Data, dout.Data, dq.Data, dk.Data, dv.Data);
        });
        Assert.Equal(0, bytes);
    }

    [Fact]
    public void ConvPoolAndBatchNormKernelsAllocateNothingOnceWarm()
    {
        var conv = new Conv2dGeometry(2, 3, 11, 37, 6, 3, 3, 2, 1, 1, 1, 1, 2, 3);
        var pool = Conv2dGeometry.Pooling(2, 3, 11, 37, 3, 2, 2, 2, 1, 1);
        var g = new Generator(2);
        Tensor Buffer(long count) => Tensor.Randn(g, (int)count);
        long input = (long)conv.Planes * conv.Height * conv.Width;
        long convOut = (long)conv.Batch * conv.OutChannels * conv.OutHeight * conv.OutWidth, poolOut = (long)pool.Planes * pool.OutHeight * pool.OutWidth;
        var (x, dx, y, dy, w, dw, bias) = (Buffer(input), Buffer(input), Buffer(convOut), Buffer(convOut), Buffer(6 * 9), Buffer(6 * 9), Buffer(6));
        var col = Buffer((long)conv.Planes * 9 * conv.OutHeight * conv.OutWidth);
        var (pooled, dPooled) = (Buffer(poolOut), Buffer(poolOut));
        var argmax = Tensor.Empty([(int)poolOut], DType.Int32);
        var (mean, rstd, dGamma, dBeta) = (Buffer(3), Buffer(3).Abs(), Buffer(3), Buffer(3));
        long bytes = AllocatedBytes(() =>
        {
            Cpu.Col2Im(conv, col.Data, dx.Data);
            Cpu.DepthwiseConv2d(conv, x.Data, w.Data, bias.Data, y.Data);
            Cpu.DepthwiseConv2dBackwardInput(conv, dy.Data, w.Data, dx.Data);
            Cpu.DepthwiseConv2dBackwardWeight(conv, dy.Data, x.Data, dw.Data);
            Cpu.MaxPool2d(pool, x.Data, pooled.Data, argmax.IntData);
            Cpu.MaxPool2dBackward(pool, dPooled.Data, argmax.IntData, dx.Data);
            Cpu.AvgPool2d(pool, false, x.Data, pooled.Data);
            Cpu.AvgPool2dBackward(pool, false, dPooled.Data, dx.Data);
            Cpu.AdaptiveAvgPool2d(6, 11, 37, 3, 4, x.Data, pooled.Data);
            Cpu.AdaptiveAvgPool2dBackward(6, 11, 37, 3, 4, dPooled.Data, dx.Data);
            Cpu.BatchNormStatistics(x.Data, mean.Data, dGamma.Data, 2, 3, 11 * 37);
            Cpu.BatchNorm(x.Data, mean.Data, rstd.Data, null, bias.Data, y.Data, 2, 3, 11 * 37);
            Cpu.BatchNormBackward(dy.Data, x.Data, mean.Data, rstd.Data, w.Data, dx.Data, dGamma.Data, dBeta.Data, 2, 3, 11 * 37, true);
        });
        Assert.Equal(0, bytes);
    }
}
