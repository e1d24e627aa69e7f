using System.Buffers.Binary;
using System.Text;
using Nabla.Data;
using Nabla.IO;

namespace Nabla.Tests.IO;

/// <summary>Headers that claim more than the file holds, or sizes that overflow, are refused from the header
/// alone, before the data is allocated. The files are written byte by byte here, following the formats'
/// specifications, not by Nabla's writers.</summary>
public class ReaderLimitsTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nabla-limits-" + Guid.NewGuid().ToString("N"));

    public ReaderLimitsTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    /// <summary>A safetensors file: 8-byte little-endian header length, the JSON header, then <paramref name="dataBytes"/> zero bytes.</summary>
    private string SafeTensorsFile(string header, int dataBytes, ulong? claimedHeaderLength = null)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, claimedHeaderLength ?? (ulong)json.Length);
        json.CopyTo(bytes, 8);
        var path = Path.Combine(_dir, "x.safetensors");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static void Refused(string path, params string[] mentions)
    {
        long before = BufferPool.LiveBytes;
        var e = Assert.Throws<CheckpointException>(() => SafeTensors.Load(path));
        Assert.StartsWith(path + ":", e.Message);
        foreach (var m in mentions) Assert.Contains(m, e.Message);
        Assert.True(BufferPool.LiveBytes - before < 1 << 20);
    }

    [Fact]
    public void AHeaderLengthBeyondTheFileIsRefused() =>
        Refused(SafeTensorsFile("{}", 0, claimedHeaderLength: ulong.MaxValue), "header length 18446744073709551615 does not fit");

    [Fact]
    public void AShapeWhoseElementCountOverflowsIsRefused() =>
        Refused(SafeTensorsFile("""{"w":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,16]}}""", 16), "tensor 'w'");

    [Fact]
    public void AShapeBeyondWhatATensorHoldsIsRefused() =>
        Refused(SafeTensorsFile("""{"w":{"dtype":"F32","shape":[65536,65536],"data_offsets":[0,16]}}""", 16), "tensor 'w'", "more than a tensor can hold");

    [Fact]
    public void OffsetsThatDisagreeWithDTypeAndShapeAreRefused() =>
        Refused(SafeTensorsFile("""{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", 8), "tensor 'w'", "8 bytes stored", "needs 12");

    [Fact]
    public void OverlappingTensorsAreRefused() =>
        Refused(SafeTensorsFile("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12),
            "'a' and 'b' overlap");

    [Fact]
    public void AnUnknownDTypeIsRefused() =>
        Refused(SafeTensorsFile("""{"w":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}}""", 1), "tensor 'w'", "unsupported dtype F8_E9");

    [Fact]
    public void AnI64ValueBeyondInt32IsNamedWithItsElement()
    {
        var path = SafeTensorsFile("""{"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}""", 16);
        var bytes = File.ReadAllBytes(path);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(bytes.Length - 8), 1L << 40);
        File.WriteAllBytes(path, bytes);
        Refused(path, "tensor 'ids'", "I64 value 1099511627776 at element 1");
    }

    /// <summary>llm.c's token shard: 256 little-endian int32 (magic 20240520, version 1, count), then uint16 tokens.</summary>
    private string Shard(int claimedCount, params ushort[] tokens)
    {
        var bytes = new byte[1024 + 2 * tokens.Length];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, 20240520);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), 1);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), claimedCount);
        for (int i = 0; i < tokens.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(1024 + 2 * i), tokens[i]);
        var path = Path.Combine(_dir, "train_000000.bin");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void AShardReadsWhenItsTokensAreInTheVocabulary() => Assert.Equal([1, 2, 49], TokenShard.Read(Shard(3, 1, 2, 49), vocabularySize: 50));

    [Fact]
    public void ATokenCountBeyondTheFileIsRefusedBeforeAllocating()
    {
        var path = Shard(int.MaxValue, 1, 2, 3);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<DataFormatException>(() => TokenShard.Read(path));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20);
        Assert.StartsWith(path, e.Message);
        Assert.Contains("the header says 2147483647 tokens", e.Message);
    }

    [Fact]
    public void ATokenIdBeyondTheVocabularyIsNamedWithFileAndPosition()
    {
        var path = Shard(4, 1, 2, 50, 3);
        var e = Assert.Throws<DataFormatException>(() => TokenBatchLoader.FromShards([path], 1, 2, vocabularySize: 50));
        Assert.Equal($"{path}: token 2 (byte 1028) is id 50, outside the vocabulary of 50; was the shard made with another tokenizer?", e.Message);
    }

    [Fact]
    public void ReadingIsCappedAndRefusesWhatIsNotARegularFile()
    {
        var big = Path.Combine(_dir, "big.json");
        File.WriteAllBytes(big, new byte[2048]);
        var e = Assert.Throws<InputFileException>(() => BoundedFile.ReadAllBytes(big, 1024, "a test file"));
        Assert.Equal($"{big}: 2 KiB, too large for a test file (limit 1 KiB); is it the right file?", e.Message);
        Assert.Contains("not a regular file", Assert.Throws<InputFileException>(() => BoundedFile.ReadAllBytes("/dev/zero", 1024, "a test file")).Message);
        Assert.Contains("is a directory", Assert.Throws<InputFileException>(() => BoundedFile.ReadAllBytes(_dir, 1024, "a test file")).Message);
        Assert.Empty(BoundedFile.ReadAllBytes("/dev/null", 1024, "a test file"));
    }
}
