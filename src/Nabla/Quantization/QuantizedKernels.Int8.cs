using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Nabla.Kernels;
using Nabla.Kernels.Cpu;

namespace Nabla.Quantization;

/// <summary>
/// The int8 path (prefill): y = x·Wᵀ for Q8_0 and Q4_0 weights as a tiled int8 GEMM.
/// <list type="number">
/// <item>The activations are quantised once, row by row, to Q8_0 blocks exactly as ggml's quantize_row_q8_0 (int8
/// values, one half-rounded scale per 32), the rows spread over the threads.</item>
/// <item>The weights are taken a panel of <see cref="PanelRows"/> rows at a time (one panel per parallel task), and
/// the panel is repacked into a small per-thread buffer: for each block, eight groups of four consecutive values,
/// each group holding those four values of all 16 rows side by side (64 bytes), then the 16 block scales as floats.
/// Q4_0's nibbles are unpacked there, so the matrix itself is never expanded: the panel (40 bytes a weight row per
/// block: 32 values, a scale, a correction) is reused for every activation row. It needs no further blocking along
/// K: at K = 3072 it is 61 KB and stays in L2, while the activations stream through in order.</item>
/// <item>A register-blocked micro-kernel then computes 4 activation rows × 16 weight rows at once (AVX2: × 8, one
/// half of the panel at a time, for its 16 registers): a group of four
/// activation bytes is broadcast to every lane and multiplied into a packed group, so each lane adds the 4-term
/// dot product of its own weight row; after a block's 8 groups each lane holds that row's exact integer block dot,
/// which is converted to float and scaled by d_w·d_x (lanes = weight rows, so the scales are a vector load).</item>
/// </list>
/// The multiply: AVX-VNNI's vpdpbusd (256-bit; .NET 10 exposes no 512-bit form for AVX-512 VNNI, only AVX10.2's) on
/// the AVX-512 path where the CPU has it, with the activations stored biased (q + 128, unsigned as vpdpbusd wants)
/// and the bias's share, 128·Σw over the block, taken back by starting each block's sum at −128·Σw (packed with the
/// panel). Otherwise AVX2's vpmaddubsw + vpmaddwd: vpmaddubsw multiplies unsigned by signed bytes and saturates at
/// int16, so the weight goes in as |w| and the activation takes w's sign (vpsignb); |w|·|x| ≤ 128·127, so a pair
/// cannot saturate. Q4_0 on AVX2 keeps its nibbles unsigned instead, which saves the vpsignb and most of the
/// vpmaddwd (<see cref="TileAvx2Nibbles"/>). Every path gives the integer block dots of <see cref="QuantizedReference.MatMulInt8"/> exactly.
/// </summary>
public static unsafe partial class QuantizedKernels
{
    /// <summary>Weight rows (output features) per packed panel: two 8-lane vectors.</summary>
    internal const int PanelRows = 16;
    private const int TileRows = 4;
    private const int GroupsPerBlock = GgmlBlocks.BlockSize / 4;
    private const int GroupBytes = PanelRows * 4;
    private const int PanelScalesOffset = GroupsPerBlock * GroupBytes;
    private const int PanelCorrectionsOffset = PanelScalesOffset + PanelRows * sizeof(float);
    /// <summary>One block of a packed panel: 8 groups of 64 bytes, 16 float scales, 16 int bias corrections (VNNI).</summary>
    private const int PanelBlockBytes = PanelCorrectionsOffset + PanelRows * sizeof(int);
    private const int QuantizeRowsPerTask = 16;

    /// <summary>Avx2Nibbles: Q4_0 on AVX2, its nibbles kept unsigned (see <see cref="TileAvx2Nibbles"/>).</summary>
    private enum Int8Kernel { Scalar, Avx2, Avx2Nibbles, Vnni }

    [ThreadStatic] private static Int8GemmTask? _int8Task;
    [ThreadStatic] private static QuantizeActivationsTask? _quantizeTask;
    [ThreadStatic] private static sbyte[]? _activationBuffer;
    [ThreadStatic] private static byte[]? _panelBuffer;
    [ThreadStatic] private static int[]? _activationSums;

    /// <summary>The int8 path (Q8_0 and Q4_0; public for tests: <see cref="MatMul"/> picks the path).</summary>
    public static void MatMulInt8(QuantizedMatrix w, float* x, int m, float* y, float* bias)
    {
        if (w.Format == QuantizationFormat.Nf4) throw new ArgumentException("NF4 has no int8 path; its values are not evenly spaced.");
        var isa = CpuFeatures.Effective;
        var kernel = isa >= Isa.Avx512 && AvxVnni.IsSupported ? Int8Kernel.Vnni
            : isa < Isa.Avx2 ? Int8Kernel.Scalar
            : w.Format == QuantizationFormat.Q4_0 ? Int8Kernel.Avx2Nibbles : Int8Kernel.Avx2;
        int K = w.Columns, blocks = w.BlocksPerRow;

        var quantize = _quantizeTask ??= new QuantizeActivationsTask();
        quantize.X = x;
        quantize.M = m;
        quantize.Blocks = blocks;
        quantize.Q = Grow(ref _activationBuffer, (long)m * K);
        quantize.D = Grow(ref _floatBuffer, (long)m * blocks);
        quantize.Vector = isa >= Isa.Avx2;
        quantize.Biased = kernel == Int8Kernel.Vnni;
        quantize.Sums = kernel == Int8Kernel.Avx2Nibbles ? Grow(ref _activationSums, (long)m * blocks) : null;
        WorkerPool.Run((m + QuantizeRowsPerTask - 1) / QuantizeRowsPerTask, quantize);

        var task = _int8Task ??= new Int8GemmTask();
        task.W = w;
        task.Kernel = kernel;
        task.M = m;
        task.Qx = quantize.Q;
        task.Dx = quantize.D;
        task.Sx = quantize.Sums;
        task.Y = y;
        task.Bias = bias;
        fixed (byte* data = w.Data)
        {
            task.Data = data;
            WorkerPool.Run((w.Rows + PanelRows - 1) / PanelRows, task);
        }
        task.W = null;
    }

    private sealed class QuantizeActivationsTask : IParallelTask
    {
        public float* X, D;
        public sbyte* Q;
        public int* Sums;
        public int M, Blocks;
        public bool Vector, Biased;

        public void Execute(int taskIndex)
        {
            int K = Blocks * GgmlBlocks.BlockSize;
            for (int i = taskIndex * QuantizeRowsPerTask, end = Math.Min(M, i + QuantizeRowsPerTask); i < end; i++)
                QuantizeActivationRow(X + (long)i * K, Q + (long)i * K, D + (long)i * Blocks, Blocks, Vector, Biased,
                    Sums == null ? null : Sums + (long)i * Blocks);
        }
    }

    /// <summary>One row of activations to Q8_0 blocks exactly as ggml's quantize_row_q8_0 (int8 values and the
    /// half-rounded scale, kept as a float); <paramref name="biased"/> stores q + 128 (as bytes) for vpdpbusd, and
    /// <paramref name="sums"/> (if not null) gets each block's Σq. The vector rounding reproduces roundf's
    /// halves-away-from-zero.</summary>
    internal static void QuantizeActivationRow(float* x, sbyte* q, float* d, int blocks, bool vector, bool biased = false, int* sums = null)
    {
        for (int b = 0; b < blocks; b++, x += 32, q += 32)
        {
            float amax = 0;
            if (vector)
            {
                var m = Vector256.Max(Vector256.Max(Vector256.Abs(Vector256.Load(x)), Vector256.Abs(Vector256.Load(x + 8))),
                    Vector256.Max(Vector256.Abs(Vector256.Load(x + 16)), Vector256.Abs(Vector256.Load(x + 24))));
                var h = Vector128.Max(m.GetLower(), m.GetUpper());
                amax = MathF.Max(MathF.Max(h[0], h[1]), MathF.Max(h[2], h[3]));
            }
            else for (int j = 0; j < 32; j++) amax = MathF.Max(amax, MathF.Abs(x[j]));
            float scale = amax / 127;
            float inverse = scale != 0 ? 1f / scale : 0f;
            d[b] = (float)(Half)scale;
            if (vector)
            {
                var inv = Vector256.Create(inverse);
                Vector256<int> q0 = RoundToInt32(Vector256.Load(x) * inv), q1 = RoundToInt32(Vector256.Load(x + 8) * inv);
                Vector256<int> q2 = RoundToInt32(Vector256.Load(x + 16) * inv), q3 = RoundToInt32(Vector256.Load(x + 24) * inv);
                var bytes = Vector256.Narrow(Vector256.Narrow(q0, q1), Vector256.Narrow(q2, q3));
                if (biased) bytes ^= Vector256.Create(sbyte.MinValue);
                bytes.Store(q);
                if (sums != null) sums[b] = Vector256.Sum(q0 + q1 + q2 + q3);
            }
            else
            {
                int sum = 0;
                for (int j = 0; j < 32; j++)
                {
                    int v = (int)MathF.Round(x[j] * inverse, MidpointRounding.AwayFromZero);
                    q[j] = (sbyte)(biased ? v ^ 0x80 : v);
                    sum += v;
                }
                if (sums != null) sums[b] = sum;
            }
        }
    }

    /// <summary>roundf per lane: v − trunc(v) is exact, so |v − t| ≥ 0.5 is exactly when roundf moves away from zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> RoundToInt32(Vector256<float> v)
    {
        var t = Vector256.Truncate(v);
        var r = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(Vector256.Abs(v - t), Vector256.Create(0.5f)),
            t + Vector256.CopySign(Vector256.Create(1f), v), t);
        return Vector256.ConvertToInt32(r);
    }

    private sealed class Int8GemmTask : IParallelTask
    {
        public QuantizedMatrix? W;
        public Int8Kernel Kernel;
        public int M;
        public float* Y, Bias, Dx;
        public sbyte* Qx;
        public int* Sx;
        public byte* Data;

        public void Execute(int taskIndex)
        {
            var w = W!;
            int r0 = taskIndex * PanelRows, rows = Math.Min(PanelRows, w.Rows - r0), K = w.Columns, blocks = w.BlocksPerRow, N = w.Rows;
            byte* panel = (byte*)Grow(ref _panelBuffer, (long)blocks * PanelBlockBytes);
            PackPanel(w, Data, r0, rows, panel, Kernel);
            float* tile = stackalloc float[TileRows * PanelRows];
            var x = stackalloc sbyte*[TileRows];
            var dx = stackalloc float*[TileRows];
            var sx = stackalloc int*[TileRows];
            for (int i = 0; i < M; i += TileRows)
            {
                int n = Math.Min(TileRows, M - i);
                for (int k = 0; k < TileRows; k++)
                {
                    int row = i + Math.Min(k, n - 1); // a short last tile repeats its last row; those results are dropped
                    x[k] = Qx + (long)row * K;
                    dx[k] = Dx + (long)row * blocks;
                    sx[k] = Sx == null ? null : Sx + (long)row * blocks;
                }
                switch (Kernel)
                {
                    case Int8Kernel.Vnni: TileVnni(panel, blocks, x, dx, tile); break;
                    case Int8Kernel.Avx2:
                        TileAvx2(panel, blocks, x, dx, tile, half: 0);
                        if (rows > 8) TileAvx2(panel, blocks, x, dx, tile, half: 1);
                        break;
                    case Int8Kernel.Avx2Nibbles:
                        TileAvx2Nibbles(panel, blocks, x, dx, sx, tile, half: 0);
                        if (rows > 8) TileAvx2Nibbles(panel, blocks, x, dx, sx, tile, half: 1);
                        break;
                    default: TileScalar(panel, blocks, x, dx, tile, rows); break;
                }
                for (int k = 0; k < n; k++)
                {
                    float* yRow = Y + (long)(i + k) * N + r0;
                    for (int j = 0; j < rows; j++) yRow[j] = Bias != null ? tile[k * PanelRows + j] + Bias[r0 + j] : tile[k * PanelRows + j];
                }
            }
        }
    }

    /// <summary>Weight rows r0 … r0 + rows − 1 into the panel layout (see the class summary); rows past the matrix's
    /// end are zero with zero scales. For <see cref="Int8Kernel.Vnni"/>, each block also gets −128·Σw per row; for
    /// <see cref="Int8Kernel.Avx2Nibbles"/>, Q4_0's nibbles stay unsigned (0…15).</summary>
    private static void PackPanel(QuantizedMatrix w, byte* data, int r0, int rows, byte* panel, Int8Kernel kernel)
    {
        bool vnni = kernel == Int8Kernel.Vnni, unsignedNibbles = kernel == Int8Kernel.Avx2Nibbles;
        bool q8 = w.Format == QuantizationFormat.Q8_0;
        int blockBytes = GgmlBlocks.BlockBytes(w.Format), blocks = w.BlocksPerRow;
        var values = stackalloc sbyte[GgmlBlocks.BlockSize];
        byte* p = panel;
        for (int b = 0; b < blocks; b++, p += PanelBlockBytes)
        {
            float* scales = (float*)(p + PanelScalesOffset);
            for (int j = 0; j < PanelRows; j++)
            {
                if (j >= rows)
                {
                    scales[j] = 0;
                    for (int g = 0; g < GroupsPerBlock; g++) *(int*)(p + g * GroupBytes + j * 4) = 0;
                    continue;
                }
                byte* block = data + (long)(r0 + j) * w.RowBytes + (long)b * blockBytes;
                scales[j] = HalfScale(block);
                if (q8) Unsafe.CopyBlockUnaligned(values, block + 2, GgmlBlocks.BlockSize);
                else
                {
                    var (low, high) = Q4_0Nibbles(block);
                    if (unsignedNibbles) (low, high) = (low + Vector128.Create((sbyte)8), high + Vector128.Create((sbyte)8));
                    low.Store(values);
                    high.Store(values + 16);
                }
                for (int g = 0; g < GroupsPerBlock; g++) *(int*)(p + g * GroupBytes + j * 4) = ((int*)values)[g];
            }
            if (vnni)
            {
                // 128·Σw per lane, by the same instruction: the dot of 128 in every byte with each packed group.
                var c0 = Vector256<int>.Zero;
                var c1 = c0;
                var bias = Vector256.Create((byte)0x80);
                for (int g = 0; g < GroupsPerBlock; g++)
                {
                    c0 = AvxVnni.MultiplyWideningAndAdd(c0, bias, Vector256.Load((sbyte*)p + g * GroupBytes));
                    c1 = AvxVnni.MultiplyWideningAndAdd(c1, bias, Vector256.Load((sbyte*)p + g * GroupBytes + 32));
                }
                (-c0).Store((int*)(p + PanelCorrectionsOffset));
                (-c1).Store((int*)(p + PanelCorrectionsOffset) + 8);
            }
        }
    }

    /// <summary>4 activation rows (biased bytes) × 16 panel rows with vpdpbusd: 8 integer and 4 float (512-bit) accumulators.</summary>
    private static void TileVnni(byte* panel, int blocks, sbyte** x, float** dx, float* tile)
    {
        byte* x0 = (byte*)x[0], x1 = (byte*)x[1], x2 = (byte*)x[2], x3 = (byte*)x[3];
        float* d0 = dx[0], d1 = dx[1], d2 = dx[2], d3 = dx[3];
        var c0 = Vector512<float>.Zero;
        Vector512<float> c1 = c0, c2 = c0, c3 = c0;
        byte* p = panel;
        for (int b = 0; b < blocks; b++, p += PanelBlockBytes, x0 += 32, x1 += 32, x2 += 32, x3 += 32)
        {
            var e0 = Vector256.Load((int*)(p + PanelCorrectionsOffset));
            var e1 = Vector256.Load((int*)(p + PanelCorrectionsOffset) + 8);
            Vector256<int> a00 = e0, a01 = e1, a10 = e0, a11 = e1, a20 = e0, a21 = e1, a30 = e0, a31 = e1;
            for (int g = 0; g < GroupsPerBlock; g++)
            {
                var w0 = Vector256.Load((sbyte*)p + g * GroupBytes);
                var w1 = Vector256.Load((sbyte*)p + g * GroupBytes + 32);
                var v = Vector256.Create(*(int*)(x0 + 4 * g)).AsByte();
                a00 = AvxVnni.MultiplyWideningAndAdd(a00, v, w0);
                a01 = AvxVnni.MultiplyWideningAndAdd(a01, v, w1);
                v = Vector256.Create(*(int*)(x1 + 4 * g)).AsByte();
                a10 = AvxVnni.MultiplyWideningAndAdd(a10, v, w0);
                a11 = AvxVnni.MultiplyWideningAndAdd(a11, v, w1);
                v = Vector256.Create(*(int*)(x2 + 4 * g)).AsByte();
                a20 = AvxVnni.MultiplyWideningAndAdd(a20, v, w0);
                a21 = AvxVnni.MultiplyWideningAndAdd(a21, v, w1);
                v = Vector256.Create(*(int*)(x3 + 4 * g)).AsByte();
                a30 = AvxVnni.MultiplyWideningAndAdd(a30, v, w0);
                a31 = AvxVnni.MultiplyWideningAndAdd(a31, v, w1);
            }
            // both halves of a row in one 512-bit register: one conversion, multiply and FMA for 16 lanes
            var s = Vector512.Load((float*)(p + PanelScalesOffset));
            c0 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Vector512.Create(a00, a01)), s * Vector512.Create(d0[b]), c0);
            c1 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Vector512.Create(a10, a11)), s * Vector512.Create(d1[b]), c1);
            c2 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Vector512.Create(a20, a21)), s * Vector512.Create(d2[b]), c2);
            c3 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Vector512.Create(a30, a31)), s * Vector512.Create(d3[b]), c3);
        }
        c0.Store(tile);
        c1.Store(tile + PanelRows);
        c2.Store(tile + 2 * PanelRows);
        c3.Store(tile + 3 * PanelRows);
    }

    /// <summary>4 activation rows × 8 panel rows (one half of the panel) with vpsignb + vpmaddubsw + vpmaddwd: few
    /// enough accumulators for AVX2's 16 registers.</summary>
    private static void TileAvx2(byte* panel, int blocks, sbyte** x, float** dx, float* tile, int half)
    {
        sbyte* x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
        float* d0 = dx[0], d1 = dx[1], d2 = dx[2], d3 = dx[3];
        var ones = Vector256.Create((short)1);
        var c0 = Vector256<float>.Zero;
        Vector256<float> c1 = c0, c2 = c0, c3 = c0;
        byte* p = panel + half * 32;
        for (int b = 0; b < blocks; b++, p += PanelBlockBytes, x0 += 32, x1 += 32, x2 += 32, x3 += 32)
        {
            var a0 = Vector256<int>.Zero;
            Vector256<int> a1 = a0, a2 = a0, a3 = a0;
            for (int g = 0; g < GroupsPerBlock; g++)
            {
                var w = Vector256.Load((sbyte*)p + g * GroupBytes);
                var wAbs = Avx2.Abs(w);
                a0 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(wAbs, Avx2.Sign(Vector256.Create(*(int*)(x0 + 4 * g)).AsSByte(), w)), ones);
                a1 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(wAbs, Avx2.Sign(Vector256.Create(*(int*)(x1 + 4 * g)).AsSByte(), w)), ones);
                a2 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(wAbs, Avx2.Sign(Vector256.Create(*(int*)(x2 + 4 * g)).AsSByte(), w)), ones);
                a3 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(wAbs, Avx2.Sign(Vector256.Create(*(int*)(x3 + 4 * g)).AsSByte(), w)), ones);
            }
            var s = Vector256.Load((float*)(p - half * 32 + PanelScalesOffset) + half * 8);
            c0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(a0), s * Vector256.Create(d0[b]), c0);
            c1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(a1), s * Vector256.Create(d1[b]), c1);
            c2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(a2), s * Vector256.Create(d2[b]), c2);
            c3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(a3), s * Vector256.Create(d3[b]), c3);
        }
        float* t = tile + half * 8;
        c0.Store(t); c1.Store(t + PanelRows); c2.Store(t + 2 * PanelRows); c3.Store(t + 3 * PanelRows);
    }

    /// <summary>Q4_0 on AVX2: 4 activation rows × 8 panel rows with the nibbles n unsigned, so vpmaddubsw takes them
    /// as they are (no vpsignb), and as |n·x| ≤ 15·127, a block's 8 groups add up in int16 without saturating (≤ 30480)
    /// before one vpmaddwd widens them; Σ(n − 8)·x = Σn·x − 8·Σx takes the activation block sums.</summary>
    private static void TileAvx2Nibbles(byte* panel, int blocks, sbyte** x, float** dx, int** sx, float* tile, int half)
    {
        sbyte* x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
        float* d0 = dx[0], d1 = dx[1], d2 = dx[2], d3 = dx[3];
        int* e0 = sx[0], e1 = sx[1], e2 = sx[2], e3 = sx[3];
        var ones = Vector256.Create((short)1);
        var c0 = Vector256<float>.Zero;
        Vector256<float> c1 = c0, c2 = c0, c3 = c0;
        byte* p = panel + half * 32;
        for (int b = 0; b < blocks; b++, p += PanelBlockBytes, x0 += 32, x1 += 32, x2 += 32, x3 += 32)
        {
            var a0 = Vector256<short>.Zero;
            Vector256<short> a1 = a0, a2 = a0, a3 = a0;
            for (int g = 0; g < GroupsPerBlock; g++)
            {
                var n = Vector256.Load(p + g * GroupBytes);
                a0 += Avx2.MultiplyAddAdjacent(n, Vector256.Create(*(int*)(x0 + 4 * g)).AsSByte());
                a1 += Avx2.MultiplyAddAdjacent(n, Vector256.Create(*(int*)(x1 + 4 * g)).AsSByte());
                a2 += Avx2.MultiplyAddAdjacent(n, Vector256.Create(*(int*)(x2 + 4 * g)).AsSByte());
                a3 += Avx2.MultiplyAddAdjacent(n, Vector256.Create(*(int*)(x3 + 4 * g)).AsSByte());
            }
            var s = Vector256.Load((float*)(p - half * 32 + PanelScalesOffset) + half * 8);
            c0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Avx2.MultiplyAddAdjacent(a0, ones) - Vector256.Create(8 * e0[b])), s * Vector256.Create(d0[b]), c0);
            c1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Avx2.MultiplyAddAdjacent(a1, ones) - Vector256.Create(8 * e1[b])), s * Vector256.Create(d1[b]), c1);
            c2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Avx2.MultiplyAddAdjacent(a2, ones) - Vector256.Create(8 * e2[b])), s * Vector256.Create(d2[b]), c2);
            c3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Avx2.MultiplyAddAdjacent(a3, ones) - Vector256.Create(8 * e3[b])), s * Vector256.Create(d3[b]), c3);
        }
        float* t = tile + half * 8;
        c0.Store(t); c1.Store(t + PanelRows); c2.Store(t + 2 * PanelRows); c3.Store(t + 3 * PanelRows);
    }

    /// <summary>The scalar twin over the same packed panel (unbiased activations).</summary>
    private static void TileScalar(byte* panel, int blocks, sbyte** x, float** dx, float* tile, int rows)
    {
        for (int k = 0; k < TileRows; k++)
            for (int j = 0; j < rows; j++)
            {
                float sum = 0;
                byte* p = panel;
                for (int b = 0; b < blocks; b++, p += PanelBlockBytes)
                {
                    int dot = 0;
                    for (int g = 0; g < GroupsPerBlock; g++)
                        for (int t = 0; t < 4; t++) dot += (sbyte)p[g * GroupBytes + j * 4 + t] * x[k][b * 32 + 4 * g + t];
                    sum += dot * (((float*)(p + PanelScalesOffset))[j] * dx[k][b]);
                }
                tile[k * PanelRows + j] = sum;
            }
    }
}
