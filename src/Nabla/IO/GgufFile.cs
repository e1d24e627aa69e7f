using System.Buffers.Binary;
using System.Text;

namespace Nabla.IO;

/// <summary>ggml's tensor types (the numbers GGUF stores). Only F32, F16, Q8_0 and Q4_0 are read and written here;
/// the others are named so that an error can say which type a file holds.</summary>
public enum GgmlType : uint
{
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30,
}

/// <summary>The types of GGUF metadata values.</summary>
public enum GgufValueType : uint
{
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7, String = 8, Array = 9,
    UInt64 = 10, Int64 = 11, Float64 = 12,
}

/// <summary>One metadata value: <see cref="Value"/> is the .NET value of <see cref="Type"/> (byte, sbyte, ushort,
/// short, uint, int, float, bool, string, ulong, long, double), or a <see cref="GgufArray"/>.</summary>
public sealed record GgufValue(GgufValueType Type, object Value)
{
    public static GgufValue Of(string value) => new(GgufValueType.String, value);
    public static GgufValue Of(uint value) => new(GgufValueType.UInt32, value);
    public static GgufValue Of(int value) => new(GgufValueType.Int32, value);
    public static GgufValue Of(float value) => new(GgufValueType.Float32, value);
    public static GgufValue Of(bool value) => new(GgufValueType.Bool, value);
    public static GgufValue Of(IReadOnlyList<string> values) => new(GgufValueType.Array, new GgufArray(GgufValueType.String, values.ToArray()));
    public static GgufValue Of(IReadOnlyList<int> values) => new(GgufValueType.Array, new GgufArray(GgufValueType.Int32, values.ToArray()));

    public override string ToString() => Value is GgufArray array ? $"array of {array.Items.Length} {array.ElementType}" : $"{Type} {Value}";
}

/// <summary>An array value: every element has <see cref="ElementType"/>; <see cref="Items"/> is a typed .NET array
/// (string[], int[], ..., or GgufArray[] for arrays of arrays).</summary>
public sealed record GgufArray(GgufValueType ElementType, Array Items);

/// <summary>One tensor's entry in a GGUF header. <see cref="Dimensions"/> are ggml's ne: the innermost (fastest
/// varying) first, so a PyTorch (out, in) matrix is [in, out]; <see cref="Offset"/> counts from the start of the
/// data section.</summary>
public sealed record GgufTensorInfo(string Name, long[] Dimensions, GgmlType Type, long Offset, long ByteCount)
{
    /// <summary>The shape in PyTorch's order (outermost first).</summary>
    public int[] Shape => Dimensions.Reverse().Select(d => (int)d).ToArray();

    public long ElementCount => Dimensions.Aggregate(1L, (n, d) => n * d);
}

/// <summary>
/// A GGUF file (ggml's model format, read by llama.cpp and its ecosystem): the header read and checked, the tensor
/// data read on request. Layout (all little-endian): "GGUF", version (2 or 3), tensor count and metadata count
/// (u64); metadata entries (key string, value type, value; strings are a u64 byte length and UTF-8 bytes, arrays
/// an element type, a u64 count and the elements); tensor entries (name, dimension count, dimensions as u64
/// innermost first, ggml type, u64 offset); padding to the alignment (metadata general.alignment, default 32); the
/// tensor data, each tensor at its offset, a multiple of the alignment. Every count, length and offset is checked
/// against the bytes the file has before anything is allocated for it; errors name the file and the key or tensor.
/// </summary>
public sealed class GgufFile
{
    public const uint Magic = 0x46554747; // "GGUF" read as a little-endian u32
    public const int DefaultAlignment = 32;
    public const string AlignmentKey = "general.alignment";
    private const int MaxDimensions = 4;     // GGML_MAX_DIMS
    private const int MaxTensorNameBytes = 63; // GGML_MAX_NAME (64) with its terminating zero
    private const int MaxArrayNesting = 8;

    public string Path { get; }
    public uint Version { get; }
    /// <summary>The metadata in file order.</summary>
    public IReadOnlyList<KeyValuePair<string, GgufValue>> Metadata { get; }
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }
    public int Alignment { get; }
    /// <summary>File offset of the data section.</summary>
    public long DataStart { get; }

    private readonly Dictionary<string, GgufValue> _metadataByKey;
    private readonly Dictionary<string, GgufTensorInfo> _tensorsByName;

    private GgufFile(string path, uint version, List<KeyValuePair<string, GgufValue>> metadata, List<GgufTensorInfo> tensors, int alignment, long dataStart)
    {
        Path = path;
        Version = version;
        Metadata = metadata;
        Tensors = tensors;
        Alignment = alignment;
        DataStart = dataStart;
        _metadataByKey = metadata.ToDictionary(kv => kv.Key, kv => kv.Value);
        _tensorsByName = tensors.ToDictionary(t => t.Name);
    }

    public GgufValue? this[string key] => _metadataByKey.GetValueOrDefault(key);

    public GgufTensorInfo? Tensor(string name) => _tensorsByName.GetValueOrDefault(name);

    /// <summary>Bytes per block and values per block of a type this reader can decode; null for the others.</summary>
    public static (int Values, int Bytes)? BlockSize(GgmlType type) =>
        GgufBlockCodecs.For(type) is { } codec ? (codec.BlockValues, codec.BlockBytes) : null;

    /// <summary>Reads and checks the header of <paramref name="path"/>.</summary>
    public static GgufFile Open(string path)
    {
        using var stream = OpenStream(path);
        var reader = new HeaderReader(stream, path);
        uint magic = reader.UInt32("the magic number");
        if (magic != Magic)
            throw new CheckpointException($"{path}: not a GGUF file (it starts with 0x{magic:X8}, not \"GGUF\").");
        uint version = reader.UInt32("the version");
        if (version is not (2 or 3))
            throw new CheckpointException(BinaryPrimitives.ReverseEndianness(version) is 2 or 3
                ? $"{path}: a big-endian GGUF file; only little-endian ones are supported."
                : $"{path}: GGUF version {version} is not supported (2 and 3 are).");
        ulong tensorCount = reader.UInt64("the tensor count");
        ulong metadataCount = reader.UInt64("the metadata count");
        // Each metadata entry takes at least 12 bytes (an empty key and a type) plus its value; each tensor entry 24.
        if (metadataCount > (ulong)(reader.Remaining / 13) || tensorCount > (ulong)(reader.Remaining / 24))
            throw new CheckpointException($"{path}: the header promises {metadataCount} metadata entries and {tensorCount} tensors, more than its {stream.Length} bytes can hold (corrupt or truncated).");

        var metadata = new List<KeyValuePair<string, GgufValue>>((int)metadataCount);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        for (ulong i = 0; i < metadataCount; i++)
        {
            string key = reader.String($"the key of metadata entry {i}");
            if (!keys.Add(key)) throw new CheckpointException($"{path}: metadata key '{key}' appears twice.");
            var type = (GgufValueType)reader.UInt32($"the type of '{key}'");
            metadata.Add(new(key, reader.Value(type, key, depth: 0)));
        }

        int alignment = DefaultAlignment;
        if (metadata.FirstOrDefault(kv => kv.Key == AlignmentKey).Value is { } alignmentValue)
        {
            if (alignmentValue.Value is not uint a || a == 0 || (a & (a - 1)) != 0 || a > 1 << 20)
                throw new CheckpointException($"{path}: {AlignmentKey} is {alignmentValue}; it must be a UInt32 power of two (at most 1 MiB).");
            alignment = (int)a;
        }

        var entries = new List<(string Name, long[] Dimensions, GgmlType Type, ulong Offset)>((int)tensorCount);
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (ulong i = 0; i < tensorCount; i++)
        {
            string name = reader.String($"the name of tensor {i}");
            if (Encoding.UTF8.GetByteCount(name) > MaxTensorNameBytes)
                throw new CheckpointException($"{path}: tensor name '{name[..Math.Min(name.Length, 80)]}' is longer than ggml's {MaxTensorNameBytes} bytes.");
            if (!names.Add(name)) throw new CheckpointException($"{path}: tensor '{name}' appears twice.");
            uint rank = reader.UInt32($"the dimension count of tensor '{name}'");
            if (rank is 0 or > MaxDimensions)
                throw new CheckpointException($"{path}: tensor '{name}' has {rank} dimensions (1 to {MaxDimensions} allowed).");
            var dimensions = new long[rank];
            for (int d = 0; d < rank; d++)
            {
                ulong size = reader.UInt64($"a dimension of tensor '{name}'");
                if (size == 0 || size > int.MaxValue)
                    throw new CheckpointException($"{path}: tensor '{name}' has dimension {size} (1 to {int.MaxValue} allowed).");
                dimensions[d] = (long)size;
            }
            var type = (GgmlType)reader.UInt32($"the type of tensor '{name}'");
            ulong offset = reader.UInt64($"the offset of tensor '{name}'");
            entries.Add((name, dimensions, type, offset));
        }

        long dataStart = AlignUp(reader.Position, alignment);
        long dataLength = stream.Length - dataStart;
        if (dataLength < 0 && entries.Count > 0)
            throw new CheckpointException($"{path}: truncated GGUF file: it ends inside the padding before the tensor data.");

        var tensors = new List<GgufTensorInfo>(entries.Count);
        foreach (var (name, dimensions, type, offset) in entries)
        {
            string Where() => $"{path}: tensor '{name}' ({type}, ne [{string.Join(", ", dimensions)}])";
            if (BlockSize(type) is not var (blockValues, blockBytes))
                throw new CheckpointException($"{path}: tensor '{name}' has ggml type {TypeName(type)}; only F32, F16, Q8_0 and Q4_0 are supported.");
            if (dimensions[0] % blockValues != 0)
                throw new CheckpointException($"{Where()}: its rows of {dimensions[0]} values do not split into {type}'s blocks of {blockValues}.");
            Int128 count = dimensions.Aggregate((Int128)1, (n, d) => n * d);
            if (count > int.MaxValue)
                throw new CheckpointException($"{Where()}: {count} elements, more than a tensor can hold ({int.MaxValue}).");
            long bytes = (long)count / blockValues * blockBytes;
            if (offset % (ulong)alignment != 0)
                throw new CheckpointException($"{Where()}: offset {offset} is not a multiple of the alignment {alignment}.");
            if (offset > (ulong)Math.Max(0, dataLength) || (long)offset + bytes > dataLength)
                throw new CheckpointException($"{Where()}: its {bytes} bytes at offset {offset} fall outside the {Math.Max(0, dataLength)} data bytes (the file is truncated or corrupt).");
            tensors.Add(new GgufTensorInfo(name, dimensions, type, (long)offset, bytes));
        }
        var byOffset = tensors.OrderBy(t => t.Offset).ToList();
        for (int i = 1; i < byOffset.Count; i++)
            if (byOffset[i].Offset < byOffset[i - 1].Offset + byOffset[i - 1].ByteCount)
                throw new CheckpointException($"{path}: tensors '{byOffset[i - 1].Name}' and '{byOffset[i].Name}' overlap; the header is corrupt.");
        return new GgufFile(path, version, metadata, tensors, alignment, dataStart);
    }

    /// <summary>The tensor's values as float32 in PyTorch's shape (quantised blocks decoded).</summary>
    public Tensor ReadFloat32(GgufTensorInfo info)
    {
        var raw = ReadRaw(info);
        var codec = GgufBlockCodecs.For(info.Type)!;
        var t = Nabla.Tensor.Empty(info.Shape, DType.Float32);
        codec.Decode(raw, t.AsSpan());
        return t;
    }

    /// <summary>The tensor's bytes as stored.</summary>
    public byte[] ReadRaw(GgufTensorInfo info)
    {
        if (info.ByteCount > Array.MaxLength)
            throw new CheckpointException($"{Path}: tensor '{info.Name}': {info.ByteCount} bytes are too many to read in one piece.");
        var raw = new byte[info.ByteCount];
        using var stream = OpenStream(Path);
        long offset = DataStart + info.Offset;
        for (int done = 0; done < raw.Length;)
        {
            int n = RandomAccess.Read(stream.SafeFileHandle, raw.AsSpan(done), offset + done);
            if (n <= 0) throw new CheckpointException($"{Path}: tensor '{info.Name}': unexpected end of file (truncated while being read).");
            done += n;
        }
        return raw;
    }

    public static long AlignUp(long position, int alignment) => (position + alignment - 1) / alignment * alignment;

    public static string TypeName(GgmlType type) => Enum.IsDefined(type) ? $"{type} ({(uint)type})" : $"{(uint)type}";

    private static FileStream OpenStream(string path)
    {
        try { return BoundedFile.OpenRead(path, "a GGUF file"); }
        catch (InputFileException e) { throw new CheckpointException(e.Message, e); }
    }

    /// <summary>Reads the header through a buffer, checking each read against the bytes left in the file.</summary>
    private sealed class HeaderReader(FileStream stream, string path)
    {
        private readonly BufferedStream _buffered = new(stream, 1 << 16);
        private readonly long _length = stream.Length;
        private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
        public long Position { get; private set; }
        public long Remaining => _length - Position;

        private void Read(Span<byte> into, string what)
        {
            if (into.Length > Remaining)
                throw new CheckpointException($"{path}: truncated GGUF header: the file ends in {what} (at byte {Position} of {_length}).");
            _buffered.ReadExactly(into);
            Position += into.Length;
        }

        public uint UInt32(string what) { Span<byte> b = stackalloc byte[4]; Read(b, what); return BinaryPrimitives.ReadUInt32LittleEndian(b); }
        public ulong UInt64(string what) { Span<byte> b = stackalloc byte[8]; Read(b, what); return BinaryPrimitives.ReadUInt64LittleEndian(b); }

        public string String(string what)
        {
            ulong length = UInt64(what);
            if (length > (ulong)Remaining)
                throw new CheckpointException($"{path}: {what}: a string of {length} bytes, more than the {Remaining} left in the file (corrupt or truncated).");
            var bytes = length <= 256 ? stackalloc byte[(int)length] : new byte[length];
            Read(bytes, what);
            try { return StrictUtf8.GetString(bytes); }
            catch (DecoderFallbackException) { throw new CheckpointException($"{path}: {what}: the string is not valid UTF-8."); }
        }

        public GgufValue Value(GgufValueType type, string key, int depth)
        {
            string what = $"the value of '{key}'";
            Span<byte> b = stackalloc byte[8];
            object value = type switch
            {
                GgufValueType.UInt8 => Byte(b, what),
                GgufValueType.Int8 => (sbyte)Byte(b, what),
                GgufValueType.UInt16 => BinaryPrimitives.ReadUInt16LittleEndian(Bytes(b, 2, what)),
                GgufValueType.Int16 => BinaryPrimitives.ReadInt16LittleEndian(Bytes(b, 2, what)),
                GgufValueType.UInt32 => BinaryPrimitives.ReadUInt32LittleEndian(Bytes(b, 4, what)),
                GgufValueType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(Bytes(b, 4, what)),
                GgufValueType.Float32 => BinaryPrimitives.ReadSingleLittleEndian(Bytes(b, 4, what)),
                GgufValueType.Bool => Byte(b, what) switch
                {
                    0 => false,
                    1 => true,
                    var other => throw new CheckpointException($"{path}: {what}: boolean byte {other} is neither 0 nor 1."),
                },
                GgufValueType.String => String(what),
                GgufValueType.UInt64 => BinaryPrimitives.ReadUInt64LittleEndian(Bytes(b, 8, what)),
                GgufValueType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(Bytes(b, 8, what)),
                GgufValueType.Float64 => BinaryPrimitives.ReadDoubleLittleEndian(Bytes(b, 8, what)),
                GgufValueType.Array => Array(key, depth),
                _ => throw new CheckpointException($"{path}: metadata '{key}' has value type {(uint)type}, which GGUF does not define."),
            };
            return new GgufValue(type, value);
        }

        private byte Byte(Span<byte> b, string what) => Bytes(b, 1, what)[0];

        private Span<byte> Bytes(Span<byte> b, int n, string what)
        {
            Read(b[..n], what);
            return b[..n];
        }

        private GgufArray Array(string key, int depth)
        {
            if (depth >= MaxArrayNesting) throw new CheckpointException($"{path}: metadata '{key}' nests arrays more than {MaxArrayNesting} deep.");
            var elementType = (GgufValueType)UInt32($"the element type of '{key}'");
            ulong count = UInt64($"the length of '{key}'");
            int minimumBytes = elementType switch
            {
                GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
                GgufValueType.UInt16 or GgufValueType.Int16 => 2,
                GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
                GgufValueType.String or GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
                GgufValueType.Array => 12,
                _ => throw new CheckpointException($"{path}: metadata '{key}' is an array of type {(uint)elementType}, which GGUF does not define."),
            };
            if (count > (ulong)(Remaining / minimumBytes) || count > (ulong)System.Array.MaxLength)
                throw new CheckpointException($"{path}: metadata '{key}': an array of {count} {elementType} values, more than the {Remaining} bytes left in the file can hold (corrupt or truncated).");
            var items = System.Array.CreateInstance(ElementClrType(elementType), (int)count);
            for (int i = 0; i < (int)count; i++) items.SetValue(Value(elementType, $"{key}[{i}]", depth + 1).Value, i);
            return new GgufArray(elementType, items);
        }

        private static Type ElementClrType(GgufValueType type) => type switch
        {
            GgufValueType.UInt8 => typeof(byte), GgufValueType.Int8 => typeof(sbyte),
            GgufValueType.UInt16 => typeof(ushort), GgufValueType.Int16 => typeof(short),
            GgufValueType.UInt32 => typeof(uint), GgufValueType.Int32 => typeof(int),
            GgufValueType.Float32 => typeof(float), GgufValueType.Bool => typeof(bool),
            GgufValueType.String => typeof(string), GgufValueType.UInt64 => typeof(ulong),
            GgufValueType.Int64 => typeof(long), GgufValueType.Float64 => typeof(double),
            _ => typeof(GgufArray),
        };
    }
}
