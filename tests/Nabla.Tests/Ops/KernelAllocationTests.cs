using System.Reflection;
using Nabla.Kernels;
using Nabla.Kernels.Cpu;
using Xunit.Abstractions;

namespace Nabla.Tests.Ops;

/// <summary>
/// Once warm, no kernel of <see cref="CpuBackend"/> allocates managed memory per call — on the calling thread or on
/// the pool's worker threads — under every instruction set the CPU has. Every method of <see cref="IKernelBackend"/>
/// has a case (found by reflection: a new kernel without one fails <see cref="EveryKernelHasACase"/>), sized so the
/// work is spread over two threads.
/// </summary>
[Collection(Nabla.Tests.Kernels.KernelSettingsCollection.Name)]
public unsafe class KernelAllocationTests(ITestOutputHelper output)
{
    private const int Threads = 2;

    /// <summary>A call of every kernel of a backend, on operands made once (they stay reachable through this object).</summary>
    internal sealed class Operands
    {
        private readonly Generator _g = new(5);
        private Tensor Floats(int n) => Tensor.Randn(_g, n);
        private Tensor Ints(int n, int below) => Tensor.RandInt(_g, 0, below, n);

        public readonly Dictionary<string, Action> Cases = new();

        public Operands(IKernelBackend? backend = null)
        {
            var kernels = backend ?? CpuBackend.Instance;
            const int N = 100_000; // three chunks of the element-wise grain
            var (a, b, c, d) = (Floats(N), Floats(N), Floats(N), Floats(N));
            var positive = Floats(N).Abs().Add(0.1f);
            int[] shape = [250, 400], contiguous = [400, 1], transposed = [1, 250], broadcastRow = [0, 1];
            Cases["Fill"] = () => kernels.Fill(a.Data, 1.5f, N);
            var counters = Ints(N, 1000);
            Cases["AddInt"] = () => kernels.AddInt(counters.IntData, 3, N);
            Cases["Copy"] = () =>
            {
                kernels.Copy(b.Data, transposed, c.Data, contiguous, shape, accumulate: false);
                kernels.Copy(b.Data, contiguous, c.Data, contiguous, shape, accumulate: true);
            };
            var unary = UnaryFunctions().Select(f => (Action)typeof(Operands).GetMethod(nameof(UnaryCalls), BindingFlags.NonPublic | BindingFlags.Static)!
                .MakeGenericMethod(f).Invoke(null, [kernels, positive, b, c, d, N])!).ToArray();
            Cases["Unary"] = () => { foreach (var call in unary) call(); };
            Cases["UnaryBackward"] = Cases["Unary"];
            var binaryOps = Enum.GetValues<BinaryOp>();
            Cases["Binary"] = () =>
            {
                foreach (var op in binaryOps)
                    kernels.Binary(op, a.Data, contiguous, b.Data, broadcastRow, c.Data, shape);
                kernels.Binary(BinaryOp.Add, a.Data, transposed, b.Data, contiguous, c.Data, shape);
            };
            Cases["Sum"] = () =>
            {
                kernels.Sum(a.Data, d.Data, 1, N, 1);           // one long row
                kernels.Sum(a.Data, d.Data, 100, 1000, 1);      // rows
                kernels.Sum(a.Data, d.Data, 10, 100, 100);      // blocks
                kernels.Sum(a.Data, d.Data, 1, 100, 1000);      // columns of one block
            };
            var argmax = Ints(N, 1);
            Cases["Max"] = () =>
            {
                kernels.Max(a.Data, d.Data, argmax.IntData, 100, 1000, 1);
                kernels.Max(a.Data, d.Data, argmax.IntData, 10, 100, 100);
            };
            const int Rows = 64, Cols = 1500;
            var targets = Ints(Rows, Cols);
            Cases["Softmax"] = () => kernels.Softmax(a.Data, b.Data, Rows, Cols, log: false);
            Cases["SoftmaxBackward"] = () => kernels.SoftmaxBackward(b.Data, c.Data, d.Data, Rows, Cols, log: true);
            Cases["CrossEntropy"] = () => kernels.CrossEntropy(a.Data, targets.IntData, d.Data, Rows, Cols, -100, 0.1f);
            Cases["CrossEntropyBackward"] = () => kernels.CrossEntropyBackward(a.Data, targets.IntData, b.Data, c.Data, Rows, Cols, -100, 0.1f);
            var (w, bias, mean, rstd, dw, db) = (Floats(Cols), Floats(Cols), Floats(Rows), positive, Floats(Cols), Floats(Cols));
            Cases["LayerNorm"] = () => kernels.LayerNorm(a.Data, w.Data, bias.Data, b.Data, mean.Data, rstd.Data, Rows, Cols, 1e-5f);
            Cases["LayerNormBackward"] = () => kernels.LayerNormBackward(c.Data, a.Data, w.Data, mean.Data, rstd.Data, d.Data, dw.Data, db.Data, Rows, Cols);
            Cases["Gemm"] = () =>
            {
                kernels.Gemm(false, true, 128, 128, 128, a.Data, 128, 0, b.Data, 128, 0, c.Data, 128, 0, 1, false, bias.Data);
                kernels.Gemm(true, false, 64, 96, 80, a.Data, 64, 64 * 80, b.Data, 96, 80 * 96, c.Data, 96, 64 * 96, 4, true, null);
            };
            var table = Floats(1000 * 64);
            var indices = Ints(1000, 1000);
            Cases["Embedding"] = () => kernels.Embedding(table.Data, indices.IntData, a.Data, 1000, 64, 1000);
            Cases["EmbeddingBackward"] = () => kernels.EmbeddingBackward(b.Data, indices.IntData, table.Data, 1000, 64);
            var (m, v) = (Floats(N), positive);
            Cases["AdamW"] = () => kernels.AdamW(a.Data, b.Data, m.Data, v.Data, N, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 3);

            int B = 2, H = 2, T = 100, D = 40;
            var rows = new RowStrides((long)H * T * D, (long)T * D, D);
            var layout = new AttentionLayout(B, H, T, T, D, 0.125f, true, rows, rows, rows, rows);
            var (q, k, vv, o, dout, dq, dk, dv, lse) = (Floats(B * H * T * D), Floats(B * H * T * D), Floats(B * H * T * D), Floats(B * H * T * D),
                Floats(B * H * T * D), Floats(B * H * T * D), Floats(B * H * T * D), Floats(B * H * T * D), Floats(B * H * T));
            Cases["Attention"] = () => kernels.Attention(layout, q.Data, k.Data, vv.Data, o.Data, lse.Data);
            Cases["AttentionBackward"] = () =>
                kernels.AttentionBackward(layout, q.Data, k.Data, vv.Data, o.Data, lse.Data, dout.Data, dq.Data, dk.Data, dv.Data);

            const int Sequences = 32, Hidden = 300; // 300: vector lanes plus a scalar tail
            var (gates, hiddenGates, dGates, dHiddenGates) = (Floats(Sequences * 4 * Hidden), Floats(Sequences * 4 * Hidden), Floats(Sequences * 4 * Hidden), Floats(Sequences * 4 * Hidden));
            var (state, nextState, dState, dPrevState) = (Floats(Sequences * Hidden), Floats(Sequences * Hidden), Floats(Sequences * Hidden), Floats(Sequences * Hidden));
            var stateOut = Floats(Sequences * Hidden);
            Cases["LstmCell"] = () => kernels.LstmCell(gates.Data, state.Data, nextState.Data, stateOut.Data, Sequences, Hidden);
            Cases["LstmCellBackward"] = () =>
                kernels.LstmCellBackward(gates.Data, state.Data, nextState.Data, dState.Data, stateOut.Data, dGates.Data, dPrevState.Data, Sequences, Hidden);
            Cases["GruCell"] = () => kernels.GruCell(gates.Data, hiddenGates.Data, state.Data, stateOut.Data, Sequences, Hidden);
            Cases["GruCellBackward"] = () =>
                kernels.GruCellBackward(gates.Data, hiddenGates.Data, state.Data, dState.Data, dGates.Data, dHiddenGates.Data, dPrevState.Data, Sequences, Hidden);

            var conv = new Conv2dGeometry(2, 3, 11, 37, 6, 3, 3, 2, 1, 1, 1, 1, 2, 3);
            var pool = Conv2dGeometry.Pooling(2, 3, 11, 37, 3, 2, 2, 2, 1, 1);
            var col = Floats(conv.Planes * 9 * conv.OutHeight * conv.OutWidth);
            var poolArgmax = Ints(pool.Planes * pool.OutHeight * pool.OutWidth, 11 * 37);
            Cases["Col2Im"] = () => kernels.Col2Im(conv, col.Data, a.Data);
            Cases["DepthwiseConv2d"] = () => kernels.DepthwiseConv2d(conv, a.Data, w.Data, bias.Data, b.Data);
            Cases["DepthwiseConv2dBackwardInput"] = () => kernels.DepthwiseConv2dBackwardInput(conv, b.Data, w.Data, c.Data);
            Cases["DepthwiseConv2dBackwardWeight"] = () => kernels.DepthwiseConv2dBackwardWeight(conv, b.Data, a.Data, dw.Data);
            var winograd = new Conv2dGeometry(2, 3, 11, 37, 4, 3, 3, 1, 1, 1, 2, 1, 1, 1);
            var tiles = Floats((int)(Winograd.TileElements * Winograd.SliceStride(4, winograd.Tiles)));
            Cases["DirectConv2d"] = () => kernels.DirectConv2d(winograd, a.Data, w.Data, bias.Data, b.Data);
            Cases["DirectConv2dBackwardInput"] = () => kernels.DirectConv2dBackwardInput(winograd, b.Data, w.Data, c.Data);
            Cases["DirectConv2dBackwardWeight"] = () => kernels.DirectConv2dBackwardWeight(winograd, b.Data, a.Data, dw.Data);
            Cases["WinogradInput"] = () => kernels.WinogradInput(winograd, a.Data, tiles.Data);
            Cases["WinogradOutput"] = () => kernels.WinogradOutput(winograd, tiles.Data, bias.Data, b.Data);
            Cases["WinogradOutputAdjoint"] = () => kernels.WinogradOutputAdjoint(winograd, a.Data, tiles.Data);
            Cases["WinogradKernels"] = () => kernels.WinogradKernels(winograd, w.Data, c.Data, inputGradient: true);
            Cases["WinogradKernelGradient"] = () => kernels.WinogradKernelGradient(winograd, c.Data, dw.Data);
            Cases["MaxPool2d"] = () => kernels.MaxPool2d(pool, a.Data, b.Data, poolArgmax.IntData);
            Cases["MaxPool2dBackward"] = () => kernels.MaxPool2dBackward(pool, b.Data, poolArgmax.IntData, c.Data);
            Cases["AvgPool2d"] = () => kernels.AvgPool2d(pool, false, a.Data, b.Data);
            Cases["AvgPool2dBackward"] = () => kernels.AvgPool2dBackward(pool, true, b.Data, c.Data);
            Cases["AdaptiveAvgPool2d"] = () => kernels.AdaptiveAvgPool2d(6, 11, 37, 3, 4, a.Data, b.Data);
            Cases["AdaptiveAvgPool2dBackward"] = () => kernels.AdaptiveAvgPool2dBackward(6, 11, 37, 3, 4, b.Data, c.Data);
            Cases["BatchNormStatistics"] = () => kernels.BatchNormStatistics(a.Data, mean.Data, dw.Data, 2, 3, 11 * 37);
            var residual = Floats(2 * 3 * 11 * 37);
            Cases["BatchNorm"] = () => kernels.BatchNorm(a.Data, mean.Data, rstd.Data, null, bias.Data, residual.Data, true, b.Data, 2, 3, 11 * 37);
            Cases["BatchNormBackward"] = () =>
                kernels.BatchNormBackward(c.Data, a.Data, mean.Data, rstd.Data, w.Data, b.Data, d.Data, residual.Data, dw.Data, db.Data, 2, 3, 11 * 37, true);
        }

        private static Action UnaryCalls<F>(IKernelBackend kernels, Tensor x, Tensor y, Tensor dy, Tensor dx, int n) where F : struct, IUnaryFunction => () =>
        {
            kernels.Unary<F>(0.5f, x.Data, y.Data, n);
            kernels.UnaryBackward<F>(0.5f, x.Data, y.Data, dy.Data, dx.Data, n);
        };
    }

    internal static IEnumerable<Type> UnaryFunctions() => typeof(IUnaryFunction).Assembly.GetTypes()
        .Where(t => t.IsValueType && typeof(IUnaryFunction).IsAssignableFrom(t));

    /// <summary>The kernels of the interface: its methods other than property accessors.</summary>
    internal static IEnumerable<string> KernelNames() =>
        typeof(IKernelBackend).GetMethods().Where(m => !m.IsSpecialName).Select(m => m.Name).Distinct();

    [Fact]
    public void EveryKernelHasACase()
    {
        var cases = new Operands().Cases.Keys;
        var missing = KernelNames().Except(cases).ToArray();
        Assert.True(missing.Length == 0, $"IKernelBackend methods without an allocation case here: {string.Join(", ", missing)}");
        Assert.Empty(cases.Except(KernelNames()));
    }

    [Fact]
    public void NoKernelAllocatesOnceWarm()
    {
        var isas = Nabla.Tests.Kernels.TestIsas.Available;
        output.WriteLine($"Instruction sets exercised: {string.Join(", ", isas)}" + string.Concat(
            Nabla.Tests.Kernels.TestIsas.NotExercised.Select(n => $"; {n.Isa} not exercised ({n.Reason})")));
        int threads = WorkerPool.Threads;
        WorkerPool.Threads = Threads;
        try
        {
            var operands = new Operands();
            var probe = new AllocationProbe();
            var failures = new List<string>();
            foreach (var isa in isas)
            {
                using var _ = CpuFeatures.Limit(isa);
                foreach (var (name, call) in operands.Cases)
                {
                    for (int i = 0; i < 3; i++) call(); // warm: task objects made, scratch grown, code jitted and tiered up
                    // A kernel that allocates per call does so on every call; the best of a few tries ignores the
                    // runtime's own occasional allocations on these threads.
                    long least = long.MaxValue;
                    for (int attempt = 0; attempt < 3 && least > 0; attempt++)
                    {
                        long before = probe.AllocatedOnPoolThreads();
                        call();
                        least = Math.Min(least, probe.AllocatedOnPoolThreads() - before);
                    }
                    if (least > 0) failures.Add($"{name} ({isa}): {least} bytes");
                }
            }
            Assert.True(failures.Count == 0, "Kernels that allocate per call: " + string.Join("; ", failures));
        }
        finally { WorkerPool.Threads = threads; }
    }

    /// <summary>
    /// Sums GC.GetAllocatedBytesForCurrentThread over every thread of the pool (the caller included): one task per
    /// thread, each waiting until all have read their count, so no thread runs two.
    /// </summary>
    private sealed class AllocationProbe : IParallelTask
    {
        private readonly long[] _bytes = new long[Threads];
        private int _arrived;

        public long AllocatedOnPoolThreads()
        {
            _arrived = 0;
            WorkerPool.Run(Threads, this);
            long total = 0;
            foreach (var b in _bytes) total += b;
            return total;
        }

        public void Execute(int task)
        {
            _bytes[task] = GC.GetAllocatedBytesForCurrentThread();
            Interlocked.Increment(ref _arrived);
            var spin = new SpinWait();
            while (Volatile.Read(ref _arrived) < Threads) spin.SpinOnce(-1);
        }
    }
}
