using Nabla.Quantization;
using Nabla.Tests.Parity;

namespace Nabla.Tests.Quantization;

/// <summary>The block codecs against bytes written by tests/reference/make_quant_fixtures.py (which follows
/// ggml-quants.c's reference quantisers and bitsandbytes' NF4 kernels operation by operation), and
/// dequantise(quantise(w)) within each format's error bound.</summary>
public class BlockCodecTests
{
    private static ParityFixture Blocks => ParityFixture.Get("quant/blocks.safetensors");
    public static TheoryData<string> Rows => new() { "normal", "wide", "ties", "zeros", "tiny", "steps" };

    private static byte[] Bytes(Tensor t) => t.ToIntArray().Select(v => (byte)v).ToArray();

    [Theory]
    [MemberData(nameof(Rows))]
    public void GgmlBytesMatchTheReferenceQuantiser(string row)
    {
        var input = Blocks[$"{row}.input"].ToArray();
        Assert.Equal(Bytes(Blocks[$"{row}.q8_0"]), GgmlBlocks.Quantize(QuantizationFormat.Q8_0, input));
        Assert.Equal(Bytes(Blocks[$"{row}.q4_0"]), GgmlBlocks.Quantize(QuantizationFormat.Q4_0, input));
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public void Nf4MatchesBitsandbytes(string row)
    {
        var input = Blocks[$"{row}.input"].ToArray();
        var packed = new byte[input.Length / 2];
        var absmax = new float[input.Length / Nf4.BlockSize];
        Nf4.Quantize(input, packed, absmax);
        Assert.Equal(Bytes(Blocks[$"{row}.nf4"]), packed);
        Assert.Equal(Blocks[$"{row}.nf4.absmax"].ToArray(), absmax);
    }

    [Fact]
    public void DoubleQuantisedScalesMatchBitsandbytes()
    {
        // torch's vectorised linspace rounds a few entries an ulp differently by build (see Nf4.Linspace)
        var map = Blocks["double_quant.map"].ToArray();
        for (int i = 0; i < map.Length; i++) Assert.True(MathF.Abs(map[i] - Nf4.DynamicMap[i]) <= 2 * MathF.Abs(MathF.BitIncrement(map[i]) - map[i]), $"map[{i}]: {Nf4.DynamicMap[i]} vs {map[i]}");
        var quantized = Nf4.QuantizeScales(Blocks["double_quant.absmax"].ToArray());
        Assert.Equal(Blocks["double_quant.offset"].ToArray()[0], quantized.Offset);
        Assert.Equal(Blocks["double_quant.scales"].ToArray(), quantized.BlockScales);
        Assert.Equal(Bytes(Blocks["double_quant.codes"]), quantized.Codes);
        // 8-bit codes of values spread over [−1, 1]: the absmax comes back within 1 % of the largest deviation
        var absmax = Blocks["double_quant.absmax"].ToArray();
        var back = quantized.Dequantize();
        float spread = absmax.Max(a => MathF.Abs(a - quantized.Offset));
        for (int i = 0; i < absmax.Length; i++) Assert.True(MathF.Abs(back[i] - absmax[i]) <= 0.01f * spread, $"scale {i}: {absmax[i]} → {back[i]}");
    }

    /// <summary>Per element: Q8_0 within half a step (d/2, d = max|x|/127) plus 127 times the half-precision rounding
    /// of d; Q4_0 within one step (d = max|x|/8: the extreme's opposite side is clamped at 7·d); NF4 within half the
    /// widest gap between levels, (1 − 0.6962)/2 of the block's absmax.</summary>
    [Theory]
    [InlineData(1f)]
    [InlineData(1e-3f)]
    [InlineData(300f)]
    public void DequantisedValuesAreWithinEachFormatsBound(float scale)
    {
        var g = new Generator(7);
        var x = Tensor.Randn(g, 64 * 40).Mul(scale).ToArray();
        var q8 = GgmlBlocks.Dequantize(QuantizationFormat.Q8_0, GgmlBlocks.Quantize(QuantizationFormat.Q8_0, x), x.Length);
        var q4 = GgmlBlocks.Dequantize(QuantizationFormat.Q4_0, GgmlBlocks.Quantize(QuantizationFormat.Q4_0, x), x.Length);
        var packed = new byte[x.Length / 2];
        var absmax = new float[x.Length / Nf4.BlockSize];
        Nf4.Quantize(x, packed, absmax);
        var nf4 = new float[x.Length];
        Nf4.Dequantize(packed, absmax, nf4);
        for (int i = 0; i < x.Length; i++)
        {
            float max32 = x.Skip(i / 32 * 32).Take(32).Max(MathF.Abs), max64 = absmax[i / 64], d = max32 / 127;
            float q8Bound = 0.5f * d + 127 * MathF.Abs(d - (float)(Half)d);
            Assert.True(MathF.Abs(q8[i] - x[i]) <= q8Bound * 1.001f, $"Q8_0 element {i}: {x[i]} → {q8[i]}");
            Assert.True(MathF.Abs(q4[i] - x[i]) <= max32 / 8 * 1.002f, $"Q4_0 element {i}: {x[i]} → {q4[i]}");
            Assert.True(MathF.Abs(nf4[i] - x[i]) <= 0.1520f * max64, $"NF4 element {i}: {x[i]} → {nf4[i]}");
        }
    }

    [Fact]
    public void RowsThatDoNotFillBlocksAreRefusedByName()
    {
        var e = Assert.Throws<ArgumentException>(() => GgmlBlocks.Quantize(QuantizationFormat.Q4_0, new float[40]));
        Assert.Contains("blocks of 32", e.Message);
        var w = Assert.Throws<ArgumentException>(() => QuantizedMatrix.Quantize(Tensor.Zeros(4, 96), QuantizationFormat.Nf4));
        Assert.Contains("blocks of 64", w.Message);
        Assert.Contains("96", w.Message);
    }
}
