using System.Buffers.Binary;
using System.Text;

namespace Nabla.IO;

/// <summary>
/// Writes a GGUF file (version 3, the layout <see cref="GgufFile"/> describes): metadata in the order added, then
/// tensor entries, then each tensor's data padded to the alignment. Tensors are given as float32 in PyTorch's
/// shape and encoded to the requested ggml type; the file is written through a temporary file and a rename.
/// </summary>
public sealed class GgufWriter
{
    private readonly List<KeyValuePair<string, GgufValue>> _metadata = [];
    private readonly List<(string Name, Tensor Values, GgmlType Type)> _tensors = [];
    private int _alignment = GgufFile.DefaultAlignment;

    public GgufWriter Add(string key, GgufValue value)
    {
        if (_metadata.Any(kv => kv.Key == key)) throw new ArgumentException($"GGUF metadata key '{key}' is added twice.");
        if (key == GgufFile.AlignmentKey)
        {
            if (value.Value is not uint a || a == 0 || (a & (a - 1)) != 0) throw new ArgumentException($"{GgufFile.AlignmentKey} must be a UInt32 power of two, got {value}.");
            _alignment = (int)a;
        }
        _metadata.Add(new(key, value));
        return this;
    }

    /// <summary>Adds a tensor, stored as <paramref name="type"/>; its last dimension (ggml's first) must split into the type's blocks.</summary>
    public GgufWriter AddTensor(string name, Tensor values, GgmlType type)
    {
        if (GgufFile.BlockSize(type) is not var (blockValues, _))
            throw new ArgumentException($"GGUF tensor '{name}': writing {GgufFile.TypeName(type)} is not supported (F32, F16, Q8_0, Q4_0 are).");
        if (values.DType != DType.Float32) throw new ArgumentException($"GGUF tensor '{name}': expected Float32 values, got {values.DType}.");
        if (values.Rank is 0 or > 4) throw new ArgumentException($"GGUF tensor '{name}': {values.Rank} dimensions (1 to 4 allowed).");
        if (values.Size(-1) % blockValues != 0)
            throw new ArgumentException($"GGUF tensor '{name}': rows of {values.Size(-1)} values do not split into {type}'s blocks of {blockValues}.");
        if (_tensors.Any(t => t.Name == name)) throw new ArgumentException($"GGUF tensor '{name}' is added twice.");
        _tensors.Add((name, values.Contiguous(), type));
        return this;
    }

    public void Write(string path) => AtomicFile.Write(path, stream =>
    {
        var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        writer.Write(GgufFile.Magic);
        writer.Write(3u);
        writer.Write((ulong)_tensors.Count);
        writer.Write((ulong)_metadata.Count);
        foreach (var (key, value) in _metadata)
        {
            WriteString(writer, key);
            writer.Write((uint)value.Type);
            WriteValue(writer, value.Type, value.Value);
        }
        var sizes = _tensors.Select(t => ByteCount(t.Values, t.Type)).ToList();
        long offset = 0;
        for (int i = 0; i < _tensors.Count; i++)
        {
            var (name, values, type) = _tensors[i];
            WriteString(writer, name);
            writer.Write((uint)values.Rank);
            for (int d = values.Rank - 1; d >= 0; d--) writer.Write((ulong)values.Size(d)); // ggml's ne: innermost first
            writer.Write((uint)type);
            writer.Write((ulong)offset);
            offset = GgufFile.AlignUp(offset + sizes[i], _alignment);
        }
        Pad(writer);
        for (int i = 0; i < _tensors.Count; i++)
        {
            var (_, values, type) = _tensors[i];
            var bytes = new byte[sizes[i]];
            GgufBlockCodecs.For(type)!.Encode(values.AsSpan(), bytes);
            writer.Write(bytes);
            Pad(writer);
        }
        writer.Flush();
    });

    private static long ByteCount(Tensor values, GgmlType type)
    {
        var (blockValues, blockBytes) = GgufFile.BlockSize(type)!.Value;
        return (long)values.Count / blockValues * blockBytes;
    }

    private void Pad(BinaryWriter writer)
    {
        long position = writer.BaseStream.Position;
        for (long p = position; p < GgufFile.AlignUp(position, _alignment); p++) writer.Write((byte)0);
    }

    private static void WriteString(BinaryWriter writer, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        writer.Write((ulong)bytes.Length);
        writer.Write(bytes);
    }

    private static void WriteValue(BinaryWriter writer, GgufValueType type, object value)
    {
        switch (type)
        {
            case GgufValueType.UInt8: writer.Write((byte)value); break;
            case GgufValueType.Int8: writer.Write((sbyte)value); break;
            case GgufValueType.UInt16: writer.Write((ushort)value); break;
            case GgufValueType.Int16: writer.Write((short)value); break;
            case GgufValueType.UInt32: writer.Write((uint)value); break;
            case GgufValueType.Int32: writer.Write((int)value); break;
            case GgufValueType.Float32: writer.Write((float)value); break;
            case GgufValueType.Bool: writer.Write((bool)value ? (byte)1 : (byte)0); break;
            case GgufValueType.String: WriteString(writer, (string)value); break;
            case GgufValueType.UInt64: writer.Write((ulong)value); break;
            case GgufValueType.Int64: writer.Write((long)value); break;
            case GgufValueType.Float64: writer.Write((double)value); break;
            case GgufValueType.Array:
                var array = (GgufArray)value;
                writer.Write((uint)array.ElementType);
                writer.Write((ulong)array.Items.Length);
                foreach (var item in array.Items) WriteValue(writer, array.ElementType, item!);
                break;
            default: throw new ArgumentException($"GGUF value type {(uint)type} is not defined.");
        }
    }
}
