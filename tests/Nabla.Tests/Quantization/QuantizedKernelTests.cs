using Nabla.Kernels;
using Nabla.Kernels.Cpu;
using Nabla.Quantization;
using Nabla.Tests.Kernels;

namespace Nabla.Tests.Quantization;

/// <summary>The fast quantised matmuls against their naive references (<see cref="QuantizedReference"/>) on random
/// shapes, under every instruction set this machine can run (AVX-512 with AVX-VNNI where present, AVX2, scalar).</summary>
[Collection(KernelSettingsCollection.Name)]
public unsafe class QuantizedKernelTests
{
    public static TheoryData<Isa, QuantizationFormat> Cases()
    {
        var data = new TheoryData<Isa, QuantizationFormat>();
        foreach (var isa in TestIsas.Available)
            foreach (var format in Enum.GetValues<QuantizationFormat>()) data.Add(isa, format);
        return data;
    }

    private static readonly (int Rows, int Columns, int M)[] Shapes = [(1, 64, 1), (33, 128, 3), (70, 320, 4), (5, 64, 5), (65, 192, 9), (40, 256, 67)];

    /// <summary>The prefill paths' edges: weight panels of 16 rows (full, 9 rows: one past an AVX2 half, 8 and fewer),
    /// activation tiles of 4 or 6 rows (full and short), one block and many.</summary>
    private static readonly (int Rows, int Columns, int M)[] PrefillShapes = [(9, 64, 7), (16, 96, 6), (8, 32, 5), (48, 128, 12), (33, 128, 13), (40, 256, 67)];

    private static (QuantizedMatrix W, float[] X, float[] Bias) Operands(QuantizationFormat format, int rows, int columns, int m, int seed)
    {
        var g = new Generator((ulong)seed);
        var w = QuantizedMatrix.Quantize(Tensor.Randn(g, rows, columns), format, doubleQuantizeScales: format == QuantizationFormat.Nf4 && seed % 2 == 0);
        return (w, Tensor.Randn(g, m, columns).ToArray(), Tensor.Randn(g, rows).ToArray());
    }

    private static void AssertClose(float[] expected, float[] actual, float tolerance, string what)
    {
        for (int i = 0; i < expected.Length; i++)
            Assert.True(MathF.Abs(expected[i] - actual[i]) <= tolerance * (1 + MathF.Abs(expected[i])), $"{what}: element {i}: {actual[i]} vs {expected[i]}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void FloatPathMatchesItsReference(Isa isa, QuantizationFormat format)
    {
        using var _ = CpuFeatures.Limit(isa);
        int seed = 0;
        foreach (var (rows, columns, m) in Shapes)
        {
            var (w, x, bias) = Operands(format, rows, columns, m, seed++);
            var y = new float[m * rows];
            fixed (float* px = x, py = y, pb = bias) QuantizedKernels.MatMulFloat(w, px, m, py, pb);
            AssertClose(QuantizedReference.MatMulFloat(w, x, m, bias), y, 1e-5f, $"{isa} {format} {rows}×{columns}, m = {m}");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Int8PathMatchesItsReference(Isa isa, QuantizationFormat format)
    {
        if (format == QuantizationFormat.Nf4) return; // NF4 has no int8 path (MatMul sends it down the float path)
        using var _ = CpuFeatures.Limit(isa);
        int seed = 100;
        foreach (var (rows, columns, m) in Shapes.Concat(PrefillShapes))
        {
            var (w, x, bias) = Operands(format, rows, columns, m, seed++);
            var y = new float[m * rows];
            fixed (float* px = x, py = y, pb = bias) QuantizedKernels.MatMulInt8(w, px, m, py, pb);
            AssertClose(QuantizedReference.MatMulInt8(w, x, m, bias), y, 1e-5f, $"{isa} {format} {rows}×{columns}, m = {m}");
            // and the int8 path stays near the float one: activations lose at most half a step of 8 bits
            AssertClose(QuantizedReference.MatMulFloat(w, x, m, bias), y, 0.03f * MathF.Sqrt(columns), $"{isa} {format} int8 vs float");
        }
    }

    /// <summary>The integer sums at their largest: every weight at the format's extreme (Q4_0 nibble 15 and 0,
    /// Q8_0 ±127 and −128) against activations at ±127, where a 16-bit partial sum would saturate if a kernel let it.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Int8PathDoesNotSaturateAtTheExtremes(Isa isa, QuantizationFormat format)
    {
        if (format == QuantizationFormat.Nf4) return;
        using var _ = CpuFeatures.Limit(isa);
        const int rows = 24, columns = 256, m = 6;
        int blockBytes = GgmlBlocks.BlockBytes(format);
        var data = new byte[rows * columns / 32 * blockBytes];
        for (int block = 0; block < data.Length / blockBytes; block++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteHalfLittleEndian(data.AsSpan(block * blockBytes), (Half)0.01f);
            byte extreme = format == QuantizationFormat.Q4_0 ? (block % 2 == 0 ? (byte)0xFF : (byte)0x00) : (byte)(block % 3 == 0 ? 127 : block % 3 == 1 ? 0x81 : 0x80);
            data.AsSpan(block * blockBytes + 2, blockBytes - 2).Fill(extreme);
        }
        var w = QuantizedMatrix.FromBlocks(format, rows, columns, data);
        var x = Enumerable.Range(0, m * columns).Select(i => i / columns % 2 == 0 ? 1f : -1f).ToArray();
        var y = new float[m * rows];
        fixed (float* px = x, py = y) QuantizedKernels.MatMulInt8(w, px, m, py, null);
        AssertClose(QuantizedReference.MatMulInt8(w, x, m, null), y, 1e-5f, $"{isa} {format} extremes");
    }

    [Theory]
    [MemberData(nameof(TestIsas.Theory), MemberType = typeof(TestIsas))]
    public void Nf4PanelPathMatchesItsReference(Isa isa)
    {
        using var _ = CpuFeatures.Limit(isa);
        int seed = 300;
        // 2048 columns: panels of 128 rows, so 300 rows take three (the last partial)
        foreach (var (rows, columns, m) in PrefillShapes.Where(s => s.Columns % Nf4.BlockSize == 0).Append((300, 2048, 9)))
        {
            var (w, x, bias) = Operands(QuantizationFormat.Nf4, rows, columns, m, seed++);
            var y = new float[m * rows];
            fixed (float* px = x, py = y, pb = bias) QuantizedKernels.MatMulNf4Panels(w, px, m, py, pb);
            AssertClose(QuantizedReference.MatMulFloat(w, x, m, bias), y, 1e-5f * MathF.Sqrt(columns), $"{isa} NF4 panels {rows}×{columns}, m = {m}");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void InputGradientMatchesItsReference(Isa isa, QuantizationFormat format)
    {
        using var _ = CpuFeatures.Limit(isa);
        int seed = 200;
        // 320 and 576 columns: more than one tile of 256, the last one partial; 9 rows: a partial group of 8
        foreach (var (rows, columns, m) in new[] { (1, 64, 1), (9, 320, 3), (40, 576, 17), (70, 128, 40) })
        {
            var g = new Generator((ulong)seed++);
            var w = QuantizedMatrix.Quantize(Tensor.Randn(g, rows, columns), format, doubleQuantizeScales: format == QuantizationFormat.Nf4);
            var gradY = Tensor.Randn(g, m, rows).ToArray();
            var gradX = Enumerable.Repeat(float.NaN, m * columns).ToArray(); // overwritten, not accumulated into
            fixed (float* pg = gradY, px = gradX) QuantizedGradientKernels.InputGradient(w, pg, m, px);
            AssertClose(QuantizedReference.InputGradient(w, gradY, m), gradX, 1e-5f, $"{isa} {format} {rows}×{columns}, m = {m}");
        }
    }

    [Theory]
    [MemberData(nameof(TestIsas.Theory), MemberType = typeof(TestIsas))]
    public void ActivationsAreQuantisedExactlyAsGgmlsQ8_0(Isa isa)
    {
        using var _ = CpuFeatures.Limit(isa);
        var x = Tensor.Randn(new Generator(3), 4 * 32).ToArray();
        x[5] = 0.5f * (x.Take(32).Max(MathF.Abs) / 127) * 3; // lands on a half step: rounds away from zero
        Array.Clear(x, 64, 32);                               // an all-zero block
        var expected = GgmlBlocks.Quantize(QuantizationFormat.Q8_0, x);
        var q = new sbyte[x.Length];
        var d = new float[x.Length / 32];
        fixed (float* px = x, pd = d)
        fixed (sbyte* pq = q)
            QuantizedKernels.QuantizeActivationRow(px, pq, pd, x.Length / 32, CpuFeatures.UseAvx2);
        for (int b = 0; b < d.Length; b++)
        {
            Assert.Equal(GgmlBlocks.Scale(expected.AsSpan(b * 34)), d[b]);
            for (int j = 0; j < 32; j++) Assert.Equal((sbyte)expected[b * 34 + 2 + j], q[b * 32 + j]);
        }
    }

    /// <summary>Once its per-thread buffers exist, a call allocates no managed memory (checked on one thread, where
    /// every task runs on the caller).</summary>
    [Fact]
    public void AWarmCallAllocatesNothing()
    {
        int threads = WorkerPool.Threads;
        WorkerPool.Threads = 1;
        try
        {
            foreach (var format in Enum.GetValues<QuantizationFormat>())
                foreach (int m in new[] { 1, 9 })
                {
                    var (w, x, bias) = Operands(format, 64, 128, m, 7);
                    var y = new float[m * 64];
                    fixed (float* px = x, py = y, pb = bias)
                    {
                        QuantizedKernels.MatMul(w, px, m, py, pb);
                        long before = GC.GetAllocatedBytesForCurrentThread();
                        QuantizedKernels.MatMul(w, px, m, py, pb);
                        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
                    }
                }
        }
        finally
        {
            WorkerPool.Threads = threads;
        }
    }

    [Fact]
    public void HalfScalesWidenExactly()
    {
        foreach (float v in new[] { 0f, -0f, 1f, -2.5f, 65504f, 6.1e-5f, 3e-7f, -5.96e-8f, 1234.5f })
        {
            var bytes = new byte[2];
            System.Buffers.Binary.BinaryPrimitives.WriteHalfLittleEndian(bytes, (Half)v);
            fixed (byte* p = bytes) Assert.Equal((float)(Half)v, QuantizedKernels.HalfScale(p));
        }
    }
}
