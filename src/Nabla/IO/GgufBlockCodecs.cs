using System.Buffers.Binary;
using Nabla.Quantization;

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
        GgmlType.Q8_0 => GgmlBlockCodec.Q8_0,
        GgmlType.Q4_0 => GgmlBlockCodec.Q4_0,
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

    /// <summary>Q8_0 and Q4_0 through the shared ggml-exact codec, <see cref="GgmlBlocks"/> (the quantised models'
    /// own format, checked byte for byte against a script following ggml's reference quantisers).</summary>
    private sealed class GgmlBlockCodec(QuantizationFormat format) : IGgmlBlockCodec
    {
        public static readonly GgmlBlockCodec Q8_0 = new(QuantizationFormat.Q8_0);
        public static readonly GgmlBlockCodec Q4_0 = new(QuantizationFormat.Q4_0);
        public int BlockValues => GgmlBlocks.BlockSize;
        public int BlockBytes => GgmlBlocks.BlockBytes(format);
        public void Encode(ReadOnlySpan<float> values, Span<byte> blocks) => GgmlBlocks.Quantize(format, values, blocks);
        public void Decode(ReadOnlySpan<byte> blocks, Span<float> values) => GgmlBlocks.Dequantize(format, blocks, values);
    }
}
