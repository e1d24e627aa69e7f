using System.Runtime.Intrinsics;
using Nabla.Kernels;
using Nabla.Kernels.Cpu;

namespace Nabla.Quantization;

/// <summary>
/// The input gradient of y = x·Wᵀ with W a frozen <see cref="QuantizedMatrix"/> (QLoRA's backward through the base):
/// grad_x (m, Columns) = grad_y (m, Rows)·W. The matrix is never expanded: the columns are split into tiles of
/// <see cref="TileColumns"/> (one task each, so no two threads write the same gradient element), and within a
/// tile <see cref="RowsPerGroup"/> weight rows at a time are dequantised into a small stack buffer, then added into
/// every gradient row with vector FMAs, each gradient vector loaded and stored once per group. Dequantising costs
/// O(Rows·Columns) once per call; the multiply-adds, O(m·Rows·Columns), run on the widest vectors allowed.
/// </summary>
public static unsafe class QuantizedGradientKernels
{
    /// <summary>Columns per task: a multiple of every format's block (32, 64 for NF4).</summary>
    public const int TileColumns = 256;
    private const int RowsPerGroup = 8;

    [ThreadStatic] private static InputGradientTask? _task;

    /// <summary>gradX (m, W.Columns) = gradY (m, W.Rows)·W, overwriting gradX.</summary>
    public static void InputGradient(QuantizedMatrix w, float* gradY, int m, float* gradX)
    {
        var task = _task ??= new InputGradientTask();
        task.W = w;
        task.Isa = CpuFeatures.Effective;
        task.M = m;
        task.GradY = gradY;
        task.GradX = gradX;
        int tasks = (w.Columns + TileColumns - 1) / TileColumns;
        if ((long)w.Rows * w.Columns * m < 1 << 15) for (int t = 0; t < tasks; t++) task.Execute(t);
        else WorkerPool.Run(tasks, task);
        task.W = null;
    }

    private sealed class InputGradientTask : IParallelTask
    {
        public QuantizedMatrix? W;
        public Isa Isa;
        public int M;
        public float* GradY, GradX;

        public void Execute(int taskIndex)
        {
            var w = W!;
            int c0 = taskIndex * TileColumns, width = Math.Min(TileColumns, w.Columns - c0);
            int block = w.Format.BlockSize(), firstBlock = c0 / block, tileBlocks = width / block;
            int blockBytes = QuantizedMatrix.RowBytesOf(w.Format, block), tileBytes = tileBlocks * blockBytes, byteOffset = firstBlock * blockBytes;
            float* tile = stackalloc float[RowsPerGroup * TileColumns];
            float* coefficients = stackalloc float[RowsPerGroup];
            for (int i = 0; i < M; i++) new Span<float>(GradX + (long)i * w.Columns + c0, width).Clear();
            for (int r0 = 0; r0 < w.Rows; r0 += RowsPerGroup)
            {
                int rows = Math.Min(RowsPerGroup, w.Rows - r0);
                for (int k = 0; k < rows; k++)
                {
                    var bytes = w.Data.AsSpan((r0 + k) * w.RowBytes + byteOffset, tileBytes);
                    var values = new Span<float>(tile + k * TileColumns, width);
                    if (w.Format == QuantizationFormat.Nf4) Nf4.Dequantize(bytes, w.Absmax.AsSpan((r0 + k) * w.BlocksPerRow + firstBlock, tileBlocks), values);
                    else GgmlBlocks.Dequantize(w.Format, bytes, values);
                }
                for (int i = 0; i < M; i++)
                {
                    bool any = false;
                    for (int k = 0; k < rows; k++) any |= (coefficients[k] = GradY[(long)i * w.Rows + r0 + k]) != 0;
                    if (any) AddRows(Isa, tile, coefficients, rows, GradX + (long)i * w.Columns + c0, width);
                }
            }
        }
    }

    /// <summary>dst[c] += Σ_k coefficients[k]·tile[k, c] for c &lt; width (width a multiple of 32).</summary>
    private static void AddRows(Isa isa, float* tile, float* coefficients, int rows, float* dst, int width)
    {
        int c = 0;
        if (isa >= Isa.Avx512)
            for (; c + 16 <= width; c += 16)
            {
                var acc = Vector512.Load(dst + c);
                for (int k = 0; k < rows; k++) acc = Vector512.FusedMultiplyAdd(Vector512.Create(coefficients[k]), Vector512.Load(tile + k * TileColumns + c), acc);
                acc.Store(dst + c);
            }
        else if (isa >= Isa.Avx2)
            for (; c + 8 <= width; c += 8)
            {
                var acc = Vector256.Load(dst + c);
                for (int k = 0; k < rows; k++) acc = Vector256.FusedMultiplyAdd(Vector256.Create(coefficients[k]), Vector256.Load(tile + k * TileColumns + c), acc);
                acc.Store(dst + c);
            }
        for (; c < width; c++)
        {
            float acc = dst[c];
            for (int k = 0; k < rows; k++) acc = MathF.FusedMultiplyAdd(coefficients[k], tile[k * TileColumns + c], acc);
            dst[c] = acc;
        }
    }
}
