using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Nabla.Kernels;

namespace Nabla.IO;

/// <summary>A malformed, truncated or mismatched file: the message names the file and, where it applies, the tensor.</summary>
public sealed class CheckpointException(string message, Exception? inner = null) : Exception(ErrorText.OneLine(message), inner);

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafeTensorInfo(string Name, string DType, int[] Shape, long Begin, long End);

/// <summary>
/// The safetensors format (Hugging Face): an 8-byte little-endian header length N, N bytes of JSON mapping
/// each tensor name to {dtype, shape, data_offsets [begin, end)} (plus optional "__metadata__" strings), then
/// the raw little-endian data, offsets counted from the end of the header. Reading checks every offset and
/// size against the file; writing goes to a temporary file renamed into place, so a crash never leaves a
/// half-written checkpoint.
/// </summary>
public static unsafe class SafeTensors
{
    private const long MaxHeaderBytes = 100L << 20;

    /// <summary>Reads the header: tensor entries (in file order) and metadata. Every size, dtype, shape and
    /// offset is checked against the file before anything is allocated for the data.</summary>
    public static (List<SafeTensorInfo> Tensors, Dictionary<string, string> Metadata, long DataStart) ReadHeader(string path)
    {
        using var stream = Open(path);
        return ReadHeader(stream, path);
    }

    /// <summary>Opens a checkpoint; a missing file, a directory or a device is a <see cref="CheckpointException"/> like any other bad checkpoint.</summary>
    private static FileStream Open(string path)
    {
        try { return BoundedFile.OpenRead(path, "a safetensors file"); }
        catch (InputFileException e) { throw new CheckpointException(e.Message, e); }
    }

    private static (List<SafeTensorInfo> Tensors, Dictionary<string, string> Metadata, long DataStart) ReadHeader(FileStream stream, string path)
    {
        long fileLength = stream.Length;
        if (fileLength < 8) throw new CheckpointException($"{path}: not a safetensors file (only {fileLength} bytes; the 8-byte header length is missing).");
        Span<byte> lenBytes = stackalloc byte[8];
        stream.ReadExactly(lenBytes);
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (headerLen > (ulong)MaxHeaderBytes || (long)headerLen > fileLength - 8)
            throw new CheckpointException($"{path}: corrupt or truncated safetensors file (header length {headerLen} does not fit in a file of {fileLength} bytes, or exceeds the {MaxHeaderBytes >> 20} MiB limit).");
        var headerBytes = new byte[headerLen];
        stream.ReadExactly(headerBytes);
        long dataStart = 8 + (long)headerLen;
        long dataLength = fileLength - dataStart;

        JsonObject root;
        try
        {
            var text = Encoding.UTF8.GetString(headerBytes).TrimEnd(' ', '\0');
            root = JsonNode.Parse(text) as JsonObject
                ?? throw new CheckpointException($"{path}: the safetensors header is not a JSON object.");
            // JsonObject throws a bare ArgumentException on a repeated name when first enumerated: say which.
            using var doc = JsonDocument.Parse(text);
            var seen = new HashSet<string>();
            foreach (var property in doc.RootElement.EnumerateObject())
                if (!seen.Add(property.Name))
                    throw new CheckpointException($"{path}: tensor '{property.Name}' appears twice in the safetensors header.");
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{path}: corrupt safetensors header (invalid JSON, {ErrorText.Json(e)}).", e);
        }

        var metadata = new Dictionary<string, string>();
        var tensors = new List<SafeTensorInfo>();
        foreach (var (name, node) in root)
        {
            if (name == "__metadata__")
            {
                if (node is not (JsonObject or null)) throw new CheckpointException($"{path}: \"__metadata__\" is not a JSON object of strings.");
                if (node is JsonObject meta)
                    foreach (var (k, v) in meta) metadata[k] = v?.ToString() ?? "";
                continue;
            }
            try
            {
                tensors.Add(ParseEntry(node, path, name, dataLength));
            }
            catch (Exception e) when (e is FormatException or InvalidOperationException or OverflowException or JsonException)
            {
                throw new CheckpointException($"{path}: tensor '{name}': {e.Message}.", e);
            }
        }
        // Two tensors sharing bytes would alias each other's data (the reference reader refuses it too).
        var byOffset = tensors.Where(t => t.End > t.Begin).OrderBy(t => t.Begin).ToList();
        for (int i = 1; i < byOffset.Count; i++)
            if (byOffset[i].Begin < byOffset[i - 1].End)
                throw new CheckpointException($"{path}: tensors '{byOffset[i - 1].Name}' and '{byOffset[i].Name}' overlap " +
                    $"(bytes [{byOffset[i - 1].Begin}, {byOffset[i - 1].End}) and [{byOffset[i].Begin}, {byOffset[i].End})); the header is corrupt.");
        return (tensors, metadata, dataStart);
    }

    private static SafeTensorInfo ParseEntry(JsonNode? node, string path, string name, long dataLength)
    {
        var obj = node as JsonObject ?? throw new FormatException("entry is not an object");
        string dtype = (obj["dtype"] as JsonValue)?.GetValue<string>() ?? throw new FormatException("missing dtype");
        int elementSize = ElementSize(dtype, path, name);
        var shape = (obj["shape"] as JsonArray ?? throw new FormatException("missing shape"))
            .Select(d => checked((int)(d as JsonValue ?? throw new FormatException("a dimension of the shape is not a number")).GetValue<long>())).ToArray();
        var offsets = obj["data_offsets"] as JsonArray ?? throw new FormatException("missing data_offsets");
        if (offsets.Count != 2) throw new FormatException("data_offsets must have two entries");
        long begin = (offsets[0] as JsonValue ?? throw new FormatException("data_offsets are not numbers")).GetValue<long>();
        long end = (offsets[1] as JsonValue ?? throw new FormatException("data_offsets are not numbers")).GetValue<long>();
        if (shape.Any(d => d < 0)) throw new FormatException($"negative dimension in shape [{string.Join(", ", shape)}]");
        long count = 1;
        foreach (int d in shape) count = checked(count * d);
        if (count > int.MaxValue) throw new FormatException($"shape [{string.Join(", ", shape)}] has {count} elements, more than a tensor can hold ({int.MaxValue})");
        long expected = count * elementSize;
        if (begin < 0 || end < begin || end > dataLength)
            throw new FormatException($"data_offsets [{begin}, {end}) fall outside the {dataLength} data bytes (the file is truncated or corrupt)");
        if (end - begin != expected)
            throw new FormatException($"{end - begin} bytes stored for a {dtype} tensor of shape [{string.Join(", ", shape)}], which needs {expected}");
        return new SafeTensorInfo(name, dtype, shape, begin, end);
    }

    private static int ElementSize(string dtype, string path, string name) => dtype switch
    {
        "F32" or "I32" => 4,
        "F16" or "BF16" or "I16" => 2,
        "F64" or "I64" => 8,
        "I8" or "U8" or "BOOL" => 1,
        _ => throw new CheckpointException($"{path}: tensor '{name}' has unsupported dtype {dtype}."),
    };

    /// <summary>Loads every tensor. F32 stays F32; F16, BF16 and F64 become F32; I64, I16, I8, U8 and BOOL become Int32.</summary>
    public static Dictionary<string, Tensor> Load(string path) => Load(path, out _);

    /// <summary>Loads every tensor; with <paramref name="keepHalfPrecision"/> F16 and BF16 tensors stay as they are
    /// stored (<see cref="DType.Float16"/>, <see cref="DType.BFloat16"/>: half the memory, no rounding;
    /// <c>To(DType.Float32)</c> widens them when needed), everything else as <see cref="Load(string)"/>.</summary>
    public static Dictionary<string, Tensor> Load(string path, bool keepHalfPrecision) => Load(path, out _, keepHalfPrecision);

    public static Dictionary<string, Tensor> Load(string path, out Dictionary<string, string> metadata, bool keepHalfPrecision = false)
    {
        using var stream = Open(path);
        var (infos, meta, dataStart) = ReadHeader(stream, path);
        metadata = meta;
        var result = new Dictionary<string, Tensor>();
        foreach (var info in infos) result[info.Name] = ReadTensor(stream.SafeFileHandle, path, info, dataStart, keepHalfPrecision);
        return result;
    }

    /// <summary>The dtype a stored tensor loads as.</summary>
    private static DType LoadedDType(string stored, bool keepHalfPrecision) => stored switch
    {
        "F16" when keepHalfPrecision => DType.Float16,
        "BF16" when keepHalfPrecision => DType.BFloat16,
        "F32" or "F16" or "BF16" or "F64" => DType.Float32,
        _ => DType.Int32,
    };

    private static Tensor ReadTensor(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string path, SafeTensorInfo info, long dataStart, bool keepHalfPrecision)
    {
        long bytes = info.End - info.Begin;
        var dtype = LoadedDType(info.DType, keepHalfPrecision);
        var t = Tensor.Empty(info.Shape, dtype);
        if (bytes == 0) return t;
        if (dtype.SafetensorsName() == info.DType)
        {
            // In chunks: a tensor may hold more than the 2 GiB one span can address.
            for (long done = 0; done < bytes;)
            {
                int chunk = (int)Math.Min(bytes - done, 1 << 30);
                ReadExactly(handle, path, info, new Span<byte>((byte*)t.Storage.Pointer + done, chunk), dataStart + info.Begin + done);
                done += chunk;
            }
            return t;
        }
        if (bytes > Array.MaxLength)
            throw new CheckpointException($"{path}: tensor '{info.Name}': {bytes} bytes of {info.DType} are too many to convert in one piece (store it as F32).");
        var raw = new byte[bytes];
        ReadExactly(handle, path, info, raw, dataStart + info.Begin);
        float* f = (float*)t.Storage.Pointer;
        int* i = (int*)t.Storage.Pointer;
        int n = t.Count;
        if (info.DType is "F16" or "BF16")
        {
            // Little-endian 16-bit patterns, as this (little-endian) machine holds them.
            HalfPrecision.ToSingle(info.DType == "F16" ? DType.Float16 : DType.BFloat16, MemoryMarshal.Cast<byte, ushort>(raw), new Span<float>(f, n));
            return t;
        }
        for (int k = 0; k < n; k++)
        {
            switch (info.DType)
            {
                case "F64": f[k] = (float)BinaryPrimitives.ReadDoubleLittleEndian(raw.AsSpan(8 * k)); break;
                case "I64":
                    long wide = BinaryPrimitives.ReadInt64LittleEndian(raw.AsSpan(8 * k));
                    if (wide is < int.MinValue or > int.MaxValue)
                        throw new CheckpointException($"{path}: tensor '{info.Name}': I64 value {wide} at element {k} does not fit the Int32 it is loaded as.");
                    i[k] = (int)wide;
                    break;
                case "I16": i[k] = BinaryPrimitives.ReadInt16LittleEndian(raw.AsSpan(2 * k)); break;
                case "I8": i[k] = (sbyte)raw[k]; break;
                default: i[k] = raw[k]; break; // U8, BOOL
            }
        }
        return t;
    }

    private static void ReadExactly(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string path, SafeTensorInfo info, Span<byte> into, long offset)
    {
        while (into.Length > 0)
        {
            int n = RandomAccess.Read(handle, into, offset);
            if (n <= 0) throw new CheckpointException($"{path}: tensor '{info.Name}': unexpected end of file (truncated).");
            into = into[n..];
            offset += n;
        }
    }

    /// <summary>The raw bytes of one tensor of a file (any dtype), as <see cref="ReadHeader"/> located it: for data kept
    /// in its stored form (quantised blocks, half-precision values).</summary>
    public static byte[] ReadBytes(string path, SafeTensorInfo info, long dataStart)
    {
        long bytes = info.End - info.Begin;
        if (bytes > Array.MaxLength) throw new CheckpointException($"{path}: tensor '{info.Name}': {bytes} bytes are too many to read in one piece.");
        var raw = GC.AllocateUninitializedArray<byte>((int)bytes);
        using var stream = Open(path);
        ReadExactly(stream.SafeFileHandle, path, info, raw, dataStart + info.Begin);
        return raw;
    }

    /// <summary>Writes tensors (F32, I32, BF16 or F16, any strides) in the given order, atomically.</summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Save(path, tensors, [], metadata);

    /// <summary>Writes tensors (F32, I32, BF16 or F16, any strides), then tensors given as raw little-endian bytes in
    /// any dtype the format knows (U8 blocks of quantised weights), atomically.</summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IEnumerable<KeyValuePair<string, RawTensor>> raw,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        var entries = new List<(string Name, string DType, int[] Shape, long Bytes, Action<Stream> Write)>();
        foreach (var (name, t) in tensors)
        {
            if (t.DType is not (DType.Float32 or DType.Int32 or DType.BFloat16 or DType.Float16))
                throw new NotSupportedException($"Saving {t.DType} tensors ('{name}') is not supported yet.");
            int size = t.DType.SizeInBytes();
            entries.Add((name, t.DType.SafetensorsName(), t.Shape.ToArray(), (long)t.Count * size, stream =>
            {
                var c = t.To(Device.Cpu).Contiguous(); // a device tensor is copied to the host first
                if (c.Count > 0) stream.Write(new ReadOnlySpan<byte>((void*)(c.Storage.Pointer + (nint)c.Offset * size), c.Count * size));
                GC.KeepAlive(c);
            }));
        }
        foreach (var (name, r) in raw)
        {
            long expected = r.Shape.Aggregate(1L, (n, d) => n * d) * ElementSize(r.DType, path, name);
            if (r.Data.Length != expected) throw new ArgumentException($"Tensor '{name}': {r.Data.Length} bytes given for {r.DType} [{string.Join(", ", r.Shape)}], which takes {expected}.");
            entries.Add((name, r.DType, r.Shape, r.Data.Length, stream => stream.Write(r.Data)));
        }
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var meta = new JsonObject();
            foreach (var (k, v) in metadata) meta[k] = v;
            header["__metadata__"] = meta;
        }
        long offset = 0;
        var names = new HashSet<string>();
        foreach (var entry in entries)
        {
            if (!names.Add(entry.Name)) throw new ArgumentException($"Tensor name '{entry.Name}' appears twice.");
            header[entry.Name] = new JsonObject
            {
                ["dtype"] = entry.DType,
                ["shape"] = new JsonArray(entry.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + entry.Bytes),
            };
            offset += entry.Bytes;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8; // keep the data 8-byte aligned, as the reference writer does
        AtomicFile.Write(path, stream =>
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
            stream.Write(len);
            stream.Write(json);
            for (int p = json.Length; p < padded; p++) stream.WriteByte((byte)' ');
            foreach (var entry in entries) entry.Write(stream);
        });
    }
}

/// <summary>A tensor as its stored bytes: safetensors dtype name ("U8", "F16", ...), shape, little-endian data.</summary>
public sealed record RawTensor(string DType, int[] Shape, byte[] Data);

/// <summary>Writes a file through a temporary sibling and a rename, so readers see the old file or the whole new one.</summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }

    public static void WriteAllText(string path, string text) => Write(path, s => s.Write(Encoding.UTF8.GetBytes(text)));
}
