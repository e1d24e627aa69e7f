using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Nabla.Kernels;
using Nabla.Kernels.Cpu;

namespace Nabla.Quantization;

/// <summary>
/// y = x·Wᵀ (+ b) with W a <see cref="QuantizedMatrix"/>, reading its packed blocks in place: the matrix is never
/// expanded, each block is dequantised in registers on its way into the dot product (or, for NF4 prefill, a
/// bounded panel of it at a time). Three paths:
/// <list type="bullet">
/// <item>float (decoding, a few rows of x): each weight row is streamed once, its block widened to
/// floats in registers and multiplied into the float activations, the rows split over the threads. Decoding is
/// bound by memory bandwidth, so reading 1.06 (Q8_0) or 0.56 (Q4_0) bytes per weight instead of 4 is the speed-up.</item>
/// <item>int8 (prefill, many rows, Q8_0 and Q4_0): the activations are quantised once per row to Q8_0 blocks (as
/// ggml does) and multiplied into the weights by a tiled int8 GEMM, each weight block reused across several
/// activation rows and each activation across several weight rows (QuantizedKernels.Int8.cs).</item>
/// <item>NF4 panels (prefill, many rows, NF4): a bounded panel of weight rows dequantised to floats and multiplied by
/// the fp32 GEMM (QuantizedKernels.Nf4Prefill.cs).</item>
/// </list>
/// Every path has a scalar twin (NABLA_ISA=scalar) and a naive reference in <see cref="QuantizedReference"/>.
/// Buffers (quantised activations, deinterleaved NF4 activations) are per thread and reused: a warm call allocates nothing.
/// </summary>
public static unsafe partial class QuantizedKernels
{
    /// <summary>Up to this many rows of x take the float path (decoding); more take the int8 path (Q8_0, Q4_0) or the
    /// dequantised-panel path (NF4).</summary>
    public const int MaxFloatPathRows = 4;
    private const int RowsPerTask = 32;

    /// <summary>y (m, W.Rows) = x (m, W.Columns)·Wᵀ + bias (bias may be null).</summary>
    public static void MatMul(QuantizedMatrix w, float* x, int m, float* y, float* bias)
    {
        if (m <= MaxFloatPathRows) MatMulFloat(w, x, m, y, bias);
        else if (w.Format == QuantizationFormat.Nf4) MatMulNf4Panels(w, x, m, y, bias);
        else MatMulInt8(w, x, m, y, bias);
    }

    [ThreadStatic] private static FloatTask? _floatTask;
    [ThreadStatic] private static float[]? _floatBuffer;

    private static T* Grow<T>(ref T[]? buffer, long count) where T : unmanaged
    {
        if (buffer == null || buffer.Length < count) buffer = GC.AllocateUninitializedArray<T>(checked((int)Math.Max(count, 1024)), pinned: true);
        return (T*)Unsafe.AsPointer(ref buffer[0]); // pinned array: the address is stable
    }

    /// <summary>The float path for any number of rows (public for tests; <see cref="MatMul"/> picks the path).</summary>
    public static void MatMulFloat(QuantizedMatrix w, float* x, int m, float* y, float* bias)
    {
        var task = _floatTask ??= new FloatTask();
        task.W = w;
        task.Isa = CpuFeatures.Effective;
        task.M = m;
        task.Y = y;
        task.Bias = bias;
        if (w.Format == QuantizationFormat.Nf4)
        {
            // NF4 bytes hold (even, odd) element pairs: with x's even and odd elements of each block side by side,
            // a nibble plane lines up with contiguous activations.
            float* split = Grow(ref _floatBuffer, (long)m * w.Columns);
            for (int i = 0; i < m; i++) SplitEvenOdd(x + (long)i * w.Columns, split + (long)i * w.Columns, w.Columns);
            x = split;
        }
        task.X = x;
        fixed (byte* data = w.Data)
        fixed (float* absmax = w.Absmax)
        {
            task.Data = data;
            task.Absmax = absmax;
            int tasks = (w.Rows + RowsPerTask - 1) / RowsPerTask;
            if ((long)w.Rows * w.Columns * m < 1 << 15) for (int t = 0; t < tasks; t++) task.Execute(t);
            else WorkerPool.Run(tasks, task);
        }
        task.W = null;
    }

    private static void SplitEvenOdd(float* x, float* split, int columns)
    {
        for (int b = 0; b < columns; b += Nf4.BlockSize)
            for (int j = 0; j < Nf4.BlockSize / 2; j++)
            {
                split[b + j] = x[b + 2 * j];
                split[b + Nf4.BlockSize / 2 + j] = x[b + 2 * j + 1];
            }
    }

    private sealed class FloatTask : IParallelTask
    {
        public QuantizedMatrix? W;
        public Isa Isa;
        public int M;
        public float* X, Y, Bias, Absmax;
        public byte* Data;

        public void Execute(int taskIndex)
        {
            var w = W!;
            int r0 = taskIndex * RowsPerTask, r1 = Math.Min(w.Rows, r0 + RowsPerTask), K = w.Columns, blocks = w.BlocksPerRow;
            for (int r = r0; r < r1; r++)
            {
                byte* row = Data + (long)r * w.RowBytes;
                for (int i = 0; i < M; i++)
                {
                    float* x = X + (long)i * K;
                    float dot = w.Format switch
                    {
                        QuantizationFormat.Q8_0 => DotQ8_0(Isa, row, x, blocks),
                        QuantizationFormat.Q4_0 => DotQ4_0(Isa, row, x, blocks),
                        _ => DotNf4(Isa, row, Absmax + (long)r * blocks, x, blocks),
                    };
                    Y[(long)i * w.Rows + r] = Bias != null ? dot + Bias[r] : dot;
                }
            }
        }
    }

    private const float TwoTo112 = 5.192296858534828E+33f; // 2^112, exactly

    /// <summary>ggml's half-precision scale at the start of a block, widened exactly (subnormals included): the
    /// half's bits shifted into a float's places give the value·2^−112, which the multiply undoes; the sign bit is
    /// put back without a branch (Q4_0's scales take either sign at random, and a mispredicted branch per block
    /// costs more than the block's arithmetic).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float HalfScale(byte* block)
    {
        int h = *(ushort*)block;
        float magnitude = BitConverter.Int32BitsToSingle((h & 0x7FFF) << 13) * TwoTo112;
        return BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(magnitude) | (h & 0x8000) << 16);
    }

    private static float DotQ8_0(Isa isa, byte* row, float* x, int blocks)
    {
        if (isa >= Isa.Avx512)
        {
            var acc = Vector512<float>.Zero;
            for (int b = 0; b < blocks; b++, row += GgmlBlocks.Q8_0BlockBytes, x += 32)
            {
                var w0 = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)row + 2)));
                var w1 = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)row + 18)));
                var s = Vector512.FusedMultiplyAdd(w1, Vector512.Load(x + 16), w0 * Vector512.Load(x));
                acc = Vector512.FusedMultiplyAdd(s, Vector512.Create(HalfScale(row)), acc);
            }
            return Vector512.Sum(acc);
        }
        if (isa >= Isa.Avx2)
        {
            var acc = Vector256<float>.Zero;
            for (int b = 0; b < blocks; b++, row += GgmlBlocks.Q8_0BlockBytes, x += 32)
            {
                sbyte* q = (sbyte*)row + 2;
                var s = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q)) * Vector256.Load(x);
                s = Vector256.FusedMultiplyAdd(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q + 8)), Vector256.Load(x + 8), s);
                s = Vector256.FusedMultiplyAdd(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q + 16)), Vector256.Load(x + 16), s);
                s = Vector256.FusedMultiplyAdd(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q + 24)), Vector256.Load(x + 24), s);
                acc = Vector256.FusedMultiplyAdd(s, Vector256.Create(HalfScale(row)), acc);
            }
            return Vector256.Sum(acc);
        }
        float sum = 0;
        for (int b = 0; b < blocks; b++, row += GgmlBlocks.Q8_0BlockBytes, x += 32)
        {
            float s = 0;
            for (int j = 0; j < 32; j++) s += (sbyte)row[2 + j] * x[j];
            sum += s * HalfScale(row);
        }
        return sum;
    }

    /// <summary>A Q4_0 block's 16 bytes as two vectors of signed values: elements 0–15 (low nibbles) and 16–31 (high).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector128<sbyte> Low, Vector128<sbyte> High) Q4_0Nibbles(byte* block)
    {
        var v = Vector128.Load(block + 2);
        var mask = Vector128.Create((byte)0x0F);
        var eight = Vector128.Create((sbyte)8);
        return ((v & mask).AsSByte() - eight, (Vector128.ShiftRightLogical(v, 4) & mask).AsSByte() - eight);
    }

    private static float DotQ4_0(Isa isa, byte* row, float* x, int blocks)
    {
        if (isa >= Isa.Avx512)
        {
            var acc = Vector512<float>.Zero;
            for (int b = 0; b < blocks; b++, row += GgmlBlocks.Q4_0BlockBytes, x += 32)
            {
                var (low, high) = Q4_0Nibbles(row);
                var w0 = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(low));
                var w1 = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(high));
                var s = Vector512.FusedMultiplyAdd(w1, Vector512.Load(x + 16), w0 * Vector512.Load(x));
                acc = Vector512.FusedMultiplyAdd(s, Vector512.Create(HalfScale(row)), acc);
            }
            return Vector512.Sum(acc);
        }
        if (isa >= Isa.Avx2)
        {
            var acc = Vector256<float>.Zero;
            for (int b = 0; b < blocks; b++, row += GgmlBlocks.Q4_0BlockBytes, x += 32)
            {
                var (low, high) = Q4_0Nibbles(row);
                var s = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(low)) * Vector256.Load(x);
                s = Vector256.FusedMultiplyAdd(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(low, 8))), Vector256.Load(x + 8), s);
                s = Vector256.FusedMultiplyAdd(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(high)), Vector256.Load(x + 16), s);
                s = Vector256.FusedMultiplyAdd(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(high, 8))), Vector256.Load(x + 24), s);
                acc = Vector256.FusedMultiplyAdd(s, Vector256.Create(HalfScale(row)), acc);
            }
            return Vector256.Sum(acc);
        }
        float sum = 0;
        for (int b = 0; b < blocks; b++, row += GgmlBlocks.Q4_0BlockBytes, x += 32)
        {
            float s = 0;
            for (int j = 0; j < 16; j++) s += ((row[2 + j] & 0x0F) - 8) * x[j] + ((row[2 + j] >> 4) - 8) * x[j + 16];
            sum += s * HalfScale(row);
        }
        return sum;
    }

    /// <summary>NF4 row · activations whose blocks are split into even then odd elements (see <see cref="SplitEvenOdd"/>):
    /// high nibbles (even elements) meet the first half, low nibbles the second. The 16 levels are looked up in
    /// registers: one vpermps over a 16-float table (AVX-512), or two 8-float tables and a blend (AVX2).</summary>
    private static float DotNf4(Isa isa, byte* row, float* absmax, float* x, int blocks)
    {
        fixed (float* levels = Nf4.Levels)
        {
            if (isa >= Isa.Avx512)
            {
                var table = Vector512.Load(levels);
                var mask = Vector128.Create((byte)0x0F);
                var acc = Vector512<float>.Zero;
                for (int b = 0; b < blocks; b++, row += 32, x += 64)
                {
                    var v0 = Vector128.Load(row);
                    var v1 = Vector128.Load(row + 16);
                    Vector512<float> Level(Vector128<byte> nibbles) => Avx512F.PermuteVar16x32(table, Avx512F.ConvertToVector512Int32(nibbles));
                    var s = Level(Vector128.ShiftRightLogical(v0, 4)) * Vector512.Load(x);
                    s = Vector512.FusedMultiplyAdd(Level(Vector128.ShiftRightLogical(v1, 4)), Vector512.Load(x + 16), s);
                    s = Vector512.FusedMultiplyAdd(Level(v0 & mask), Vector512.Load(x + 32), s);
                    s = Vector512.FusedMultiplyAdd(Level(v1 & mask), Vector512.Load(x + 48), s);
                    acc = Vector512.FusedMultiplyAdd(s, Vector512.Create(absmax[b]), acc);
                }
                return Vector512.Sum(acc);
            }
            if (isa >= Isa.Avx2)
            {
                var lowTable = Vector256.Load(levels);
                var highTable = Vector256.Load(levels + 8);
                var seven = Vector256.Create(7);
                var mask = Vector128.Create((byte)0x0F);
                var acc = Vector256<float>.Zero;
                for (int b = 0; b < blocks; b++, row += 32, x += 64)
                {
                    var s = Vector256<float>.Zero;
                    for (int part = 0; part < 4; part++)
                    {
                        var v = Vector128.CreateScalar(*(ulong*)(row + 8 * part)).AsByte(); // elements 16·part … 16·part + 15
                        Vector256<float> Level(Vector128<byte> nibbles)
                        {
                            var index = Avx2.ConvertToVector256Int32(nibbles);
                            return Avx.BlendVariable(Avx2.PermuteVar8x32(lowTable, index), Avx2.PermuteVar8x32(highTable, index),
                                Vector256.GreaterThan(index, seven).AsSingle());
                        }
                        s = Vector256.FusedMultiplyAdd(Level(Vector128.ShiftRightLogical(v, 4)), Vector256.Load(x + 8 * part), s);
                        s = Vector256.FusedMultiplyAdd(Level(v & mask), Vector256.Load(x + 32 + 8 * part), s);
                    }
                    acc = Vector256.FusedMultiplyAdd(s, Vector256.Create(absmax[b]), acc);
                }
                return Vector256.Sum(acc);
            }
            float sum = 0;
            for (int b = 0; b < blocks; b++, row += 32, x += 64)
            {
                float s = 0;
                for (int j = 0; j < 32; j++) s += levels[row[j] >> 4] * x[j] + levels[row[j] & 0x0F] * x[32 + j];
                sum += s * absmax[b];
            }
            return sum;
        }
    }
}
