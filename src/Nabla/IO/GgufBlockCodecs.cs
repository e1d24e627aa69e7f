using System.Buffers.Binary;

namespace Nabla.IO;

/// <summary>
/// Turns a row of float32 values into ggml's packed blocks and back. GGUF stores every tensor as rows along its
/// first (innermost) dimension, and the block types pack each run of <see cref="BlockValues"/> values into
/// <see cref="BlockBytes"/> bytes. The GGUF reader and writer reach the quantised formats only through this
/// interface, so a shared ggml-exact codec can replace the ones below in one place.
/// </summary>
internal interface IGgmlBlockCodec
{
    int BlockValues { get; }
    int BlockBytes { get; }

    /// <summary>Packs <paramref name="values"/> (a multiple of <see cref="BlockValues"/>) into <paramref name="blocks"/>.</summary>
    void Encode(ReadOnlySpan<float> values, Span<byte> blocks);

    /// <summary>Unpacks <paramref name="blocks"/> into <paramref name="values"/>.</summary>
    void Decode(ReadOnlySpan<byte> blocks, Span<float> values);
}

/// <summary>The codecs of the tensor types GGUF files of GPT-2 use here.</summary>
internal static class GgufBlockCodecs
{
    public static IGgmlBlockCodec? For(GgmlType type) => type switch
    {
        GgmlType.F32 => Float32Codec.Instance,
        GgmlType.F16 => Float16Codec.Instance,
        GgmlType.Q8_0 => Q8_0Codec.Instance,
        GgmlType.Q4_0 => Q4_0Codec.Instance,
        _ => null,
    };

    private sealed class Float32Codec : IGgmlBlockCodec
    {
        public static readonly Float32Codec Instance = new();
        public int BlockValues => 1;
        public int BlockBytes => 4;

        public void Encode(ReadOnlySpan<float> values, Span<byte> blocks)
        {
            for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(blocks[(4 * i)..], values[i]);
        }

        public void Decode(ReadOnlySpan<byte> blocks, Span<float> values)
        {
            for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(blocks[(4 * i)..]);
        }
    }

    private sealed class Float16Codec : IGgmlBlockCodec
    {
        public static readonly Float16Codec Instance = new();
        public int BlockValues => 1;
        public int BlockBytes => 2;

        public void Encode(ReadOnlySpan<float> values, Span<byte> blocks)
        {
            for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteHalfLittleEndian(blocks[(2 * i)..], (Half)values[i]);
        }

        public void Decode(ReadOnlySpan<byte> blocks, Span<float> values)
        {
            for (int i = 0; i < values.Length; i++) values[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(blocks[(2 * i)..]);
        }
    }

    /// <summary>
    /// Q8_0: 32 values as one float16 scale d = max|x| / 127 and 32 signed bytes q = round(x / d) (halves away
    /// from zero, as C's roundf), x ≈ d·q. The scale is computed and applied in float32 before it is stored as
    /// float16, as ggml's reference quantiser does, so files written here match ggml's byte for byte.
    /// </summary>
    private sealed class Q8_0Codec : IGgmlBlockCodec
    {
        public static readonly Q8_0Codec Instance = new();
        private const int N = 32;
        public int BlockValues => N;
        public int BlockBytes => 2 + N;

        public void Encode(ReadOnlySpan<float> values, Span<byte> blocks)
        {
            for (int b = 0; b < values.Length / N; b++)
            {
                var x = values.Slice(b * N, N);
                var block = blocks.Slice(b * BlockBytes, BlockBytes);
                float absMax = 0;
                foreach (float v in x) absMax = MathF.Max(absMax, MathF.Abs(v));
                float d = absMax / 127;
                float inverse = d == 0 ? 0 : 1 / d;
                BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
                for (int i = 0; i < N; i++) block[2 + i] = (byte)(sbyte)MathF.Round(x[i] * inverse, MidpointRounding.AwayFromZero);
            }
        }

        public void Decode(ReadOnlySpan<byte> blocks, Span<float> values)
        {
            for (int b = 0; b < values.Length / N; b++)
            {
                var block = blocks.Slice(b * BlockBytes, BlockBytes);
                float d = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
                for (int i = 0; i < N; i++) values[b * N + i] = d * (sbyte)block[2 + i];
            }
        }
    }

    /// <summary>
    /// Q4_0: 32 values as one float16 scale d = m / −8, where m is the value of largest magnitude (sign kept),
    /// and 32 four-bit codes q = min(15, trunc(x / d + 8.5)), x ≈ d·(q − 8). Byte j holds value j in its low
    /// nibble and value j + 16 in its high nibble.
    /// </summary>
    private sealed class Q4_0Codec : IGgmlBlockCodec
    {
        public static readonly Q4_0Codec Instance = new();
        private const int N = 32;
        public int BlockValues => N;
        public int BlockBytes => 2 + N / 2;

        public void Encode(ReadOnlySpan<float> values, Span<byte> blocks)
        {
            for (int b = 0; b < values.Length / N; b++)
            {
                var x = values.Slice(b * N, N);
                var block = blocks.Slice(b * BlockBytes, BlockBytes);
                float extreme = 0;
                foreach (float v in x)
                    if (MathF.Abs(v) > MathF.Abs(extreme)) extreme = v;
                float d = extreme / -8;
                float inverse = d == 0 ? 0 : 1 / d;
                BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
                for (int j = 0; j < N / 2; j++)
                    block[2 + j] = (byte)(Code(x[j] * inverse) | Code(x[j + N / 2] * inverse) << 4);
            }
        }

        private static int Code(float scaled) => Math.Clamp((int)MathF.Truncate(scaled + 8.5f), 0, 15);

        public void Decode(ReadOnlySpan<byte> blocks, Span<float> values)
        {
            for (int b = 0; b < values.Length / N; b++)
            {
                var block = blocks.Slice(b * BlockBytes, BlockBytes);
                float d = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
                for (int j = 0; j < N / 2; j++)
                {
                    values[b * N + j] = d * ((block[2 + j] & 0x0F) - 8);
                    values[b * N + j + N / 2] = d * ((block[2 + j] >> 4) - 8);
                }
            }
        }
    }
}
