using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Nabla.Kernels;
using Nabla.Kernels.Cpu;
using Nabla.Kernels.Cpu.Gemm;

namespace Nabla.Quantization;

/// <summary>
/// NF4 prefill: NF4's 16 levels are table values, not evenly spaced integers, so there is no int8 dot product to
/// use. Instead a panel of weight rows (at most 4 MB of floats, whatever the matrix's size) is dequantised and handed
/// to the fp32 GEMM; the panel serves every activation row, so the dequantisation is amortised over all of them
/// and the product runs at the fp32 GEMM's speed.
/// </summary>
public static unsafe partial class QuantizedKernels
{
    /// <summary>Floats of dequantised weights per panel: 4 MB, so that even 3072-wide rows give the fp32 GEMM panels
    /// of 336 rows (1 MB gave it 80, and a fifth less speed on mlp.c_proj).</summary>
    private const int Nf4PanelFloats = 1 << 20;
    private const int Nf4DequantizeRowsPerTask = 8;

    [ThreadStatic] private static Nf4DequantizeTask? _nf4Task;
    [ThreadStatic] private static float[]? _nf4Panel;

    /// <summary>The NF4 prefill path (public for tests: <see cref="MatMul"/> picks the path).</summary>
    public static void MatMulNf4Panels(QuantizedMatrix w, float* x, int m, float* y, float* bias)
    {
        if (w.Format != QuantizationFormat.Nf4) throw new ArgumentException($"The NF4 panel path takes NF4 weights, not {w.Format.Name()}.");
        int K = w.Columns, N = w.Rows;
        int panelRows = Math.Min(N, Math.Max(PanelRows, Nf4PanelFloats / K / PanelRows * PanelRows));
        var task = _nf4Task ??= new Nf4DequantizeTask();
        task.W = w;
        task.Isa = CpuFeatures.Effective;
        task.Panel = Grow(ref _nf4Panel, (long)panelRows * K);
        fixed (byte* data = w.Data)
        fixed (float* absmax = w.Absmax)
        {
            task.Data = data;
            task.Absmax = absmax;
            for (int r0 = 0; r0 < N; r0 += panelRows)
            {
                int rows = Math.Min(panelRows, N - r0);
                task.R0 = r0;
                task.Rows = rows;
                WorkerPool.Run((rows + Nf4DequantizeRowsPerTask - 1) / Nf4DequantizeRowsPerTask, task);
                Sgemm.Run(transA: false, transB: true, m, rows, K, x, K, 0, task.Panel, K, 0, y + r0, N, 0,
                    batch: 1, accumulate: false, bias == null ? null : bias + r0);
            }
        }
        task.W = null;
    }

    private sealed class Nf4DequantizeTask : IParallelTask
    {
        public QuantizedMatrix? W;
        public Isa Isa;
        public int R0, Rows;
        public byte* Data;
        public float* Absmax, Panel;

        public void Execute(int taskIndex)
        {
            var w = W!;
            int blocks = w.BlocksPerRow;
            for (int j = taskIndex * Nf4DequantizeRowsPerTask, end = Math.Min(Rows, j + Nf4DequantizeRowsPerTask); j < end; j++)
                DequantizeNf4Row(Isa, Data + (long)(R0 + j) * w.RowBytes, Absmax + (long)(R0 + j) * blocks, Panel + (long)j * w.Columns, blocks);
        }
    }

    /// <summary>One NF4 row into floats. Byte j of a block holds elements 2j (high nibble) and 2j + 1 (low): each
    /// byte is doubled (unpack with itself), widened to ints and shifted right by 4 or 0 per lane to index the levels.</summary>
    private static void DequantizeNf4Row(Isa isa, byte* row, float* absmax, float* values, int blocks)
    {
        fixed (float* levels = Nf4.Levels)
        {
            if (isa >= Isa.Avx512)
            {
                var table = Vector512.Load(levels);
                var shifts = Vector512.Create(4u, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0);
                var mask = Vector512.Create(15u);
                for (int b = 0; b < blocks; b++, row += 32, values += 64)
                {
                    var scale = Vector512.Create(absmax[b]);
                    for (int half = 0; half < 2; half++)
                    {
                        var bytes = Vector128.Load(row + 16 * half);
                        foreach (var doubled in (ReadOnlySpan<Vector128<byte>>)[Sse2.UnpackLow(bytes, bytes), Sse2.UnpackHigh(bytes, bytes)])
                        {
                            var index = Avx512F.ShiftRightLogicalVariable(Avx512F.ConvertToVector512UInt32(doubled), shifts) & mask;
                            (Avx512F.PermuteVar16x32(table, index.AsInt32()) * scale).Store(values);
                            values += 16;
                        }
                    }
                    values -= 64;
                }
                return;
            }
            if (isa >= Isa.Avx2)
            {
                var lowTable = Vector256.Load(levels);
                var highTable = Vector256.Load(levels + 8);
                var seven = Vector256.Create(7);
                var shifts = Vector256.Create(4u, 0, 4, 0, 4, 0, 4, 0);
                var mask = Vector256.Create(15u);
                for (int b = 0; b < blocks; b++, row += 32, values += 64)
                {
                    var scale = Vector256.Create(absmax[b]);
                    for (int part = 0; part < 8; part++) // 4 bytes, 8 elements, at a time
                    {
                        var bytes = Vector128.CreateScalar(*(uint*)(row + 4 * part)).AsByte();
                        var index = (Avx2.ShiftRightLogicalVariable(Avx2.ConvertToVector256Int32(Sse2.UnpackLow(bytes, bytes)).AsUInt32(), shifts) & mask).AsInt32();
                        (Avx.BlendVariable(Avx2.PermuteVar8x32(lowTable, index), Avx2.PermuteVar8x32(highTable, index),
                            Vector256.GreaterThan(index, seven).AsSingle()) * scale).Store(values + 8 * part);
                    }
                }
                return;
            }
            for (int b = 0; b < blocks; b++, row += 32, values += 64)
                for (int j = 0; j < 32; j++)
                {
                    values[2 * j] = levels[row[j] >> 4] * absmax[b];
                    values[2 * j + 1] = levels[row[j] & 0x0F] * absmax[b];
                }
        }
    }
}
