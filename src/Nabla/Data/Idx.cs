using System.Buffers.Binary;
using System.IO.Compression;

namespace Nabla.Data;

/// <summary>Element types of the IDX format (the third byte of the magic number).</summary>
public enum IdxType : byte
{
    UInt8 = 0x08,
    Int8 = 0x09,
    Int16 = 0x0B,
    Int32 = 0x0C,
    Float32 = 0x0D,
    Float64 = 0x0E,
}

/// <summary>An n-dimensional array read from an IDX file: its element type, shape and big-endian payload.</summary>
public sealed class IdxArray(string source, IdxType type, int[] shape, byte[] data)
{
    public string Source { get; } = source;
    public IdxType Type { get; } = type;
    public int[] Shape { get; } = shape;
    /// <summary>The elements as stored: row-major, big-endian.</summary>
    public byte[] Data { get; } = data;
    public int Count => Shape.Aggregate(1, (a, b) => a * b);

    /// <summary>Element <paramref name="i"/> (row-major) as a double.</summary>
    public double this[int i] => Type switch
    {
        IdxType.UInt8 => Data[i],
        IdxType.Int8 => (sbyte)Data[i],
        IdxType.Int16 => BinaryPrimitives.ReadInt16BigEndian(Data.AsSpan(2 * i)),
        IdxType.Int32 => BinaryPrimitives.ReadInt32BigEndian(Data.AsSpan(4 * i)),
        IdxType.Float32 => BinaryPrimitives.ReadSingleBigEndian(Data.AsSpan(4 * i)),
        _ => BinaryPrimitives.ReadDoubleBigEndian(Data.AsSpan(8 * i)),
    };
}

/// <summary>
/// Reads IDX files (LeCun's format for MNIST and Fashion-MNIST), raw or gzip-compressed: a magic number
/// 0x00 0x00 TYPE RANK, RANK big-endian int32 sizes, then the elements, big-endian. Every header field is checked
/// against the file's size (for gzip, against the uncompressed size in its trailer) before anything is allocated,
/// and every error is one line naming the file.
/// </summary>
public static class Idx
{
    /// <summary>Largest payload read (2 GiB: a tensor holds at most 2^31 elements).</summary>
    public const long MaxBytes = int.MaxValue;
    private const int MaxRank = 8;
    private const int MaxDeflateRatio = 1032; // deflate cannot expand a byte more than this much

    public static IdxArray Read(string path)
    {
        FileStream file;
        try { file = IO.BoundedFile.OpenRead(path, "an IDX file"); }
        catch (IO.InputFileException e) { throw new DataFormatException(e.Message); }
        using (file)
        {
            long length = file.Length;
            Span<byte> start = stackalloc byte[2];
            bool gzip = file.Read(start) == 2 && start[0] == 0x1F && start[1] == 0x8B;
            file.Position = 0;
            try
            {
                if (!gzip) return Parse(path, file, length);
                if (length < 18) throw new DataFormatException($"{path}: a gzip file of {length} bytes is truncated.");
                // gzip's trailer holds the uncompressed size (mod 2^32), which the header is checked against.
                Span<byte> trailer = stackalloc byte[4];
                file.Position = length - 4;
                file.ReadExactly(trailer);
                long size = BinaryPrimitives.ReadUInt32LittleEndian(trailer);
                if (size > length * MaxDeflateRatio)
                    throw new DataFormatException($"{path}: the gzip trailer claims {size} bytes, more than {length} compressed bytes can hold.");
                file.Position = 0;
                using var inflated = new GZipStream(file, CompressionMode.Decompress, leaveOpen: true);
                return Parse(path, inflated, size);
            }
            catch (InvalidDataException e)
            {
                throw new DataFormatException($"{path}: corrupt gzip data: {e.Message}");
            }
            catch (EndOfStreamException)
            {
                throw new DataFormatException($"{path}: the file ends before the data its header announces.");
            }
        }
    }

    /// <summary>Parses the header and payload from <paramref name="stream"/>, which holds <paramref name="size"/> bytes.</summary>
    private static IdxArray Parse(string path, Stream stream, long size)
    {
        Span<byte> magic = stackalloc byte[4];
        if (size < 4) throw new DataFormatException($"{path}: {size} bytes is too short for an IDX header.");
        stream.ReadExactly(magic);
        if (magic[0] != 0 || magic[1] != 0 || !Enum.IsDefined((IdxType)magic[2]) || magic[3] is 0 or > MaxRank)
            throw new DataFormatException($"{path}: not an IDX file (magic 0x{BinaryPrimitives.ReadUInt32BigEndian(magic):X8}; expected 0x000008NN for bytes, 0x00000DNN for floats, ... with 1 ≤ NN ≤ {MaxRank} dimensions).");
        var type = (IdxType)magic[2];
        int rank = magic[3];
        long headerBytes = 4 + 4L * rank;
        if (size < headerBytes) throw new DataFormatException($"{path}: {size} bytes cannot hold the header of a {rank}-dimensional IDX array.");
        var shape = new int[rank];
        Span<byte> dim = stackalloc byte[4];
        long count = 1;
        for (int d = 0; d < rank; d++)
        {
            stream.ReadExactly(dim);
            shape[d] = BinaryPrimitives.ReadInt32BigEndian(dim);
            if (shape[d] < 0) throw new DataFormatException($"{path}: dimension {d} has negative size {shape[d]}.");
            count = Math.Min(count * shape[d], long.MaxValue / 16); // saturates instead of overflowing
        }
        long dataBytes = count * ElementSize(type);
        if (headerBytes + dataBytes != size)
            throw new DataFormatException($"{path}: the header announces [{string.Join(", ", shape)}] {type} elements ({dataBytes} bytes) but the file holds {size - headerBytes} bytes of data.");
        if (dataBytes > MaxBytes || count > int.MaxValue)
            throw new DataFormatException($"{path}: {dataBytes} bytes of data is more than the {MaxBytes} an array can hold.");
        var data = new byte[dataBytes];
        stream.ReadExactly(data);
        if (stream.ReadByte() >= 0) throw new DataFormatException($"{path}: there are bytes after the data the header announces.");
        return new IdxArray(path, type, shape, data);
    }

    private static int ElementSize(IdxType type) => type switch
    {
        IdxType.UInt8 or IdxType.Int8 => 1,
        IdxType.Int16 => 2,
        IdxType.Int32 or IdxType.Float32 => 4,
        _ => 8,
    };

    /// <summary>Grey-scale images (N, rows, cols) of unsigned bytes as a float tensor (N, 1, rows, cols) in [0, 1].</summary>
    public static Tensor ReadImages(string path)
    {
        var array = Read(path);
        if (array.Type != IdxType.UInt8 || array.Shape.Length != 3)
            throw new DataFormatException($"{path}: expected images, (count, rows, columns) unsigned bytes (magic 0x00000803), got [{string.Join(", ", array.Shape)}] {array.Type}.");
        var pixels = new float[array.Data.Length];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = array.Data[i] / 255f;
        return Tensor.FromArray(pixels, array.Shape[0], 1, array.Shape[1], array.Shape[2]);
    }

    /// <summary>Class labels (N) of unsigned bytes as an Int32 tensor.</summary>
    public static Tensor ReadLabels(string path)
    {
        var array = Read(path);
        if (array.Type != IdxType.UInt8 || array.Shape.Length != 1)
            throw new DataFormatException($"{path}: expected labels, a vector of unsigned bytes (magic 0x00000801), got [{string.Join(", ", array.Shape)}] {array.Type}.");
        return Tensor.FromArray(array.Data.Select(b => (int)b).ToArray());
    }
}
