namespace Nabla.Quantization;

/// <summary>
/// bitsandbytes' 4-bit NormalFloat (Dettmers et al., QLoRA, 2023): values in blocks of 64, each block scaled by its
/// absolute maximum into [−1, 1] and rounded to the nearest of 16 fixed levels (quantiles of a normal distribution,
/// with an exact zero). Two indices share a byte, the first (even) element in the high nibble, as bitsandbytes packs
/// them. An all-zero block has absmax 0; its indices are then those of x·(1/0) = NaN, which bitsandbytes' decision
/// tree sends to index 0 (−1·0 = 0 on the way back).
/// <para>Double quantisation (bitsandbytes' <c>compress_statistics</c>) stores the float absmax values themselves in
/// 8 bits: their mean is subtracted, and the rest are quantised blockwise (256 per block, one float scale each) to
/// the nearest entry of bitsandbytes' signed dynamic 8-bit map.</para>
/// </summary>
public static class Nf4
{
    public const int BlockSize = 64;
    /// <summary>Absmax values per block of the double quantisation.</summary>
    public const int ScaleBlockSize = 256;

    /// <summary>The 16 NF4 levels, bitsandbytes' table (index = stored nibble).</summary>
    public static ReadOnlySpan<float> Levels =>
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
        -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
        0.24611230194568634f, 0.33791524171829224f, 0.44070982637786865f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    ];

    // bitsandbytes' dQuantizeNF4 is a decision tree over the midpoints between adjacent levels: an index is the
    // number of midpoints below the value (a value on a midpoint goes down; NaN compares false and gets 0).
    private static readonly double[] Midpoints =
    [
        -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544, -0.23460740596055984,
        -0.13791173323988914, -0.045525018125772476, 0.03979014977812767, 0.1202552504837513, 0.2035212516784668,
        0.2920137718319893, 0.3893125355243683, 0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
    ];

    /// <summary>The index of the level nearest to <paramref name="normalized"/> (in [−1, 1]).</summary>
    public static int Index(float normalized)
    {
        int index = 0;
        foreach (var m in Midpoints) if (normalized > m) index++;
        return index;
    }

    /// <summary>Quantises <paramref name="values"/> (a multiple of 64) into packed nibbles (half a byte each) and one absmax per block.</summary>
    public static void Quantize(ReadOnlySpan<float> values, Span<byte> packed, Span<float> absmax)
    {
        CheckSizes(values.Length, packed.Length, absmax.Length);
        for (int b = 0; b < values.Length / BlockSize; b++)
        {
            var x = values.Slice(b * BlockSize, BlockSize);
            float max = 0;
            foreach (var v in x) max = MathF.Max(max, MathF.Abs(v));
            absmax[b] = max;
            float inverse = 1f / max;
            for (int j = 0; j < BlockSize / 2; j++)
                packed[b * BlockSize / 2 + j] = (byte)(Index(x[2 * j] * inverse) << 4 | Index(x[2 * j + 1] * inverse));
        }
    }

    /// <summary>The values that packed nibbles and per-block absmax stand for.</summary>
    public static void Dequantize(ReadOnlySpan<byte> packed, ReadOnlySpan<float> absmax, Span<float> values)
    {
        CheckSizes(values.Length, packed.Length, absmax.Length);
        for (int i = 0; i < values.Length / 2; i++)
        {
            float scale = absmax[2 * i / BlockSize];
            values[2 * i] = Levels[packed[i] >> 4] * scale;
            values[2 * i + 1] = Levels[packed[i] & 0x0F] * scale;
        }
    }

    private static void CheckSizes(int values, int packed, int absmax)
    {
        if (values % BlockSize != 0) throw new ArgumentException($"NF4 stores values in blocks of {BlockSize}; {values} values do not fill whole blocks.");
        if (packed != values / 2 || absmax != values / BlockSize)
            throw new ArgumentException($"{values} values take {values / 2} packed bytes and {values / BlockSize} absmax values in NF4, not {packed} and {absmax}.");
    }

    /// <summary>bitsandbytes' signed dynamic 8-bit map (create_dynamic_map(signed=True)): for each decade 10^(i−6),
    /// i = 0…6, the 2^i midpoints of linspace(0.1, 1, 2^i + 1) scaled by it, both signs, then 0 and 1; sorted.</summary>
    public static float[] DynamicMap { get; } = CreateDynamicMap();

    private static float[] CreateDynamicMap()
    {
        var data = new List<float>();
        for (int i = 0; i < 7; i++)
        {
            int items = (1 << i) + 1;
            // torch.linspace(0.1, 1, items) in float32, then the means of neighbours, then scaled (all in float32)
            var boundaries = Enumerable.Range(0, items).Select(k => Linspace(0.1f, 1f, items, k)).ToArray();
            float decade = (float)Math.Pow(10, -6 + i);
            for (int k = 0; k + 1 < items; k++)
            {
                float mean = (boundaries[k] + boundaries[k + 1]) / 2f;
                data.Add(decade * mean);
                data.Add(-decade * mean);
            }
        }
        data.Add(0f);
        data.Add(1f);
        data.Sort();
        return data.ToArray();
    }

    // torch.linspace's float32 formula: start + k·step for the first half, end − (n−1−k)·step for the second.
    // (Its vectorised kernels round some of these differently, by an ulp, depending on the vector width of the
    // build, so bitsandbytes' map itself differs by an ulp between machines; nearest-code choices do not.)
    private static float Linspace(float start, float end, int n, int k)
    {
        float step = (end - start) / (n - 1);
        return k < n / 2 ? start + step * k : end - step * (n - 1 - k);
    }

    /// <summary>Double-quantised absmax values: one byte each (an index into <see cref="DynamicMap"/>), one float
    /// scale per <see cref="ScaleBlockSize"/> of them, and the mean that was subtracted first.</summary>
    public sealed record QuantizedScales(byte[] Codes, float[] BlockScales, float Offset)
    {
        /// <summary>The absmax values they stand for: map[code]·scale + offset.</summary>
        public float[] Dequantize()
        {
            var map = DynamicMap;
            var absmax = new float[Codes.Length];
            for (int i = 0; i < absmax.Length; i++) absmax[i] = map[Codes[i]] * BlockScales[i / ScaleBlockSize] + Offset;
            return absmax;
        }
    }

    /// <summary>Double quantisation of per-block absmax values, as bitsandbytes' quantize_4bit(compress_statistics=True).</summary>
    public static QuantizedScales QuantizeScales(ReadOnlySpan<float> absmax)
    {
        double sum = 0;
        foreach (var a in absmax) sum += a;
        float offset = absmax.Length == 0 ? 0 : (float)(sum / absmax.Length);
        var codes = new byte[absmax.Length];
        var scales = new float[(absmax.Length + ScaleBlockSize - 1) / ScaleBlockSize];
        var map = DynamicMap;
        for (int b = 0; b < scales.Length; b++)
        {
            int start = b * ScaleBlockSize, end = Math.Min(absmax.Length, start + ScaleBlockSize);
            float max = 0;
            for (int i = start; i < end; i++) max = MathF.Max(max, MathF.Abs(absmax[i] - offset));
            scales[b] = max;
            float inverse = max != 0 ? 1f / max : 0f;
            for (int i = start; i < end; i++) codes[i] = (byte)Nearest(map, (absmax[i] - offset) * inverse);
        }
        return new QuantizedScales(codes, scales, offset);
    }

    private static int Nearest(float[] sorted, float x)
    {
        int best = 0;
        for (int i = 1; i < sorted.Length; i++)
            if (MathF.Abs(sorted[i] - x) < MathF.Abs(sorted[best] - x)) best = i;
        return best;
    }
}
