using System.Buffers.Binary;

namespace Nabla.Quantization;

/// <summary>
/// ggml's Q8_0 and Q4_0 block formats, byte for byte as ggml-quants.c's reference quantisers write them, so the
/// same bytes go into a GGUF file and come out of one. A row of n values (n a multiple of 32) is n/32 blocks:
/// <list type="bullet">
/// <item>Q8_0, 34 bytes: scale d (IEEE half, little-endian), then 32 int8 q; value = q·d. d = max|x| / 127 and
/// q = roundf(x / d) (half away from zero), computed in float32 with the unrounded d.</item>
/// <item>Q4_0, 18 bytes: scale d (half), then 16 bytes whose low nibbles hold elements 0–15 and high nibbles
/// elements 16–31; value = (nibble − 8)·d. d = m / −8 where m is the element of largest magnitude (the first one
/// when several tie), and nibble = min(15, trunc(x/d + 8.5)), so the extreme element maps to 0 (−8·d = m) and the
/// others to the nearest of −8…7.</item>
/// </list>
/// A scale of zero (an all-zero block) quantises every element to zero. This is the naive reference (the spec the
/// fast kernels are tested against, and what the GGUF writer uses); the kernels read these bytes in place.
/// </summary>
public static class GgmlBlocks
{
    /// <summary>Elements per block in both formats.</summary>
    public const int BlockSize = 32;
    public const int Q8_0BlockBytes = 2 + BlockSize;
    public const int Q4_0BlockBytes = 2 + BlockSize / 2;

    /// <summary>Bytes of one block of <paramref name="format"/> (Q8_0 or Q4_0).</summary>
    public static int BlockBytes(QuantizationFormat format) => format switch
    {
        QuantizationFormat.Q8_0 => Q8_0BlockBytes,
        QuantizationFormat.Q4_0 => Q4_0BlockBytes,
        _ => throw new ArgumentException($"{format} is not a ggml block format (Q8_0, Q4_0)."),
    };

    /// <summary>Bytes that <paramref name="count"/> values take in <paramref name="format"/>; the count must be a multiple of 32.</summary>
    public static long ByteCount(QuantizationFormat format, long count)
    {
        if (count % BlockSize != 0) throw new ArgumentException($"{format} stores values in blocks of {BlockSize}; {count} values do not fill whole blocks.");
        return count / BlockSize * BlockBytes(format);
    }

    /// <summary>Quantises <paramref name="values"/> (a multiple of 32 of them: whole rows) into <paramref name="blocks"/>.</summary>
    public static void Quantize(QuantizationFormat format, ReadOnlySpan<float> values, Span<byte> blocks)
    {
        long bytes = ByteCount(format, values.Length);
        if (blocks.Length != bytes) throw new ArgumentException($"{values.Length} values take {bytes} bytes of {format}, not {blocks.Length}.");
        int blockBytes = BlockBytes(format);
        for (int b = 0; b < values.Length / BlockSize; b++)
        {
            var x = values.Slice(b * BlockSize, BlockSize);
            var block = blocks.Slice(b * blockBytes, blockBytes);
            if (format == QuantizationFormat.Q8_0) QuantizeQ8_0Block(x, block);
            else QuantizeQ4_0Block(x, block);
        }
    }

    /// <summary>The bytes of <paramref name="values"/> in <paramref name="format"/>.</summary>
    public static byte[] Quantize(QuantizationFormat format, ReadOnlySpan<float> values)
    {
        var blocks = new byte[ByteCount(format, values.Length)];
        Quantize(format, values, blocks);
        return blocks;
    }

    /// <summary>The values <paramref name="blocks"/> stand for, into <paramref name="values"/> (32 per block).</summary>
    public static void Dequantize(QuantizationFormat format, ReadOnlySpan<byte> blocks, Span<float> values)
    {
        long bytes = ByteCount(format, values.Length);
        if (blocks.Length != bytes) throw new ArgumentException($"{values.Length} values take {bytes} bytes of {format}, not {blocks.Length}.");
        int blockBytes = BlockBytes(format);
        for (int b = 0; b < values.Length / BlockSize; b++)
        {
            var block = blocks.Slice(b * blockBytes, blockBytes);
            var y = values.Slice(b * BlockSize, BlockSize);
            float d = Scale(block);
            if (format == QuantizationFormat.Q8_0)
                for (int j = 0; j < BlockSize; j++) y[j] = (sbyte)block[2 + j] * d;
            else
                for (int j = 0; j < BlockSize / 2; j++)
                {
                    y[j] = ((block[2 + j] & 0x0F) - 8) * d;
                    y[j + BlockSize / 2] = ((block[2 + j] >> 4) - 8) * d;
                }
        }
    }

    /// <summary>The values of <paramref name="count"/> elements stored in <paramref name="blocks"/>.</summary>
    public static float[] Dequantize(QuantizationFormat format, ReadOnlySpan<byte> blocks, int count)
    {
        var values = new float[count];
        Dequantize(format, blocks, values);
        return values;
    }

    /// <summary>A block's scale: the half at its start.</summary>
    public static float Scale(ReadOnlySpan<byte> block) => (float)BinaryPrimitives.ReadHalfLittleEndian(block);

    private static void QuantizeQ8_0Block(ReadOnlySpan<float> x, Span<byte> block)
    {
        float amax = 0;
        foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
        float d = amax / 127;
        float id = d != 0 ? 1f / d : 0f;
        BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
        for (int j = 0; j < BlockSize; j++) block[2 + j] = (byte)(sbyte)MathF.Round(x[j] * id, MidpointRounding.AwayFromZero);
    }

    private static void QuantizeQ4_0Block(ReadOnlySpan<float> x, Span<byte> block)
    {
        float amax = 0, max = 0;
        foreach (float v in x)
            if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
        float d = max / -8;
        float id = d != 0 ? 1f / d : 0f;
        BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
        for (int j = 0; j < BlockSize / 2; j++)
        {
            // x·id lies in [−8, 8], so x·id + 8.5 is positive and the cast truncates like C's (int8_t) conversion.
            int low = Math.Min(15, (int)(x[j] * id + 8.5f));
            int high = Math.Min(15, (int)(x[j + BlockSize / 2] * id + 8.5f));
            block[2 + j] = (byte)(low | high << 4);
        }
    }
}
