using System.Buffers.Binary;
using Nabla.IO;

namespace Nabla.Data;

/// <summary>
/// llm.c's token shard format: a header of 256 little-endian int32 (magic 20240520, version 1, token count,
/// the rest zero) followed by the tokens as little-endian uint16. Written atomically; reading checks the
/// header against the file size and names the file when they disagree.
/// </summary>
public static class TokenShard
{
    public const int Magic = 20240520;
    public const int Version = 1;
    private const int HeaderInts = 256;

    public static void Write(string path, ReadOnlySpan<int> tokens)
    {
        var data = new byte[HeaderInts * 4 + tokens.Length * 2];
        BinaryPrimitives.WriteInt32LittleEndian(data, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(4), Version);
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(8), tokens.Length);
        for (int i = 0; i < tokens.Length; i++)
        {
            if ((uint)tokens[i] > ushort.MaxValue) throw new ArgumentException($"Token {tokens[i]} at position {i} does not fit the shard format's uint16.");
            BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(HeaderInts * 4 + 2 * i), (ushort)tokens[i]);
        }
        AtomicFile.Write(path, s => s.Write(data));
    }

    /// <summary>Reads a shard. With <paramref name="vocabularySize"/>, every token id is checked to be below it, so
    /// a shard made with another tokenizer is refused at once, naming the file and the position.</summary>
    public static ushort[] Read(string path, int? vocabularySize = null)
    {
        using var stream = BoundedFile.OpenRead(path, "a token shard");
        long fileLength = stream.Length;
        if (fileLength < HeaderInts * 4) throw new DataFormatException($"{path}: truncated token shard ({fileLength} bytes; the header alone is {HeaderInts * 4}).");
        var header = new byte[HeaderInts * 4];
        stream.ReadExactly(header);
        int magic = BinaryPrimitives.ReadInt32LittleEndian(header);
        int version = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4));
        int count = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8));
        if (magic != Magic) throw new DataFormatException($"{path}: not a token shard (magic {magic}, expected {Magic}).");
        if (version != Version) throw new DataFormatException($"{path}: token shard version {version} is not supported (expected {Version}: uint16 tokens).");
        // Checked against the file's size before the tokens are allocated, so a corrupt count costs nothing.
        long expected = HeaderInts * 4L + 2L * count;
        if (count < 0 || fileLength != expected)
            throw new DataFormatException($"{path}: the header says {count} tokens ({expected} bytes) but the file has {fileLength} bytes; it is truncated or corrupt.");
        var bytes = new byte[2L * count];
        try { stream.ReadExactly(bytes); }
        catch (EndOfStreamException) { throw new DataFormatException($"{path}: the file ended before its {count} tokens (it changed while being read?)."); }
        var tokens = new ushort[count];
        for (int i = 0; i < count; i++)
        {
            tokens[i] = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(2 * i));
            if (tokens[i] >= vocabularySize)
                throw new DataFormatException($"{path}: token {i} (byte {HeaderInts * 4L + 2L * i}) is id {tokens[i]}, outside the vocabulary of {vocabularySize}; was the shard made with another tokenizer?");
        }
        return tokens;
    }
}

/// <summary>A source of training batches for sequence models: batch number s is a pure function of s (and
/// the source's seed), so a run that stops can resume exactly where it was.</summary>
public interface IBatchSource
{
    (Tensor Inputs, Tensor Targets) Batch(long index);
}

/// <summary>
/// Batches of (inputs, targets), each (B, T), cut from a token stream: targets are the inputs shifted by one.
/// The stream is split into windows of T+1 tokens; with a seed the windows are visited in a shuffled order
/// that changes every epoch. Batch number s is a pure function of (seed, s), so training resumes exactly.
/// </summary>
public sealed class TokenBatchLoader : IBatchSource
{
    private readonly int[] _tokens;
    private readonly int _windows;
    private readonly ulong? _seed;
    private int _cachedEpoch = -1;
    private int[] _order = [];

    public TokenBatchLoader(int[] tokens, int batchSize, int sequenceLength, ulong? shuffleSeed = null, string source = "token stream")
    {
        if (batchSize <= 0 || sequenceLength <= 0) throw new ArgumentException("Batch size and sequence length must be positive.");
        _tokens = tokens;
        BatchSize = batchSize;
        SequenceLength = sequenceLength;
        _seed = shuffleSeed;
        _windows = (tokens.Length - 1) / sequenceLength;
        if (_windows < batchSize)
            throw new DataFormatException($"{source}: {tokens.Length} tokens make {_windows} sequences of {sequenceLength + 1}, fewer than one batch of {batchSize}.");
    }

    /// <summary>Loads llm.c shards (all files matching a glob like data/train_*.bin, in name order); with
    /// <paramref name="vocabularySize"/> every token id is checked against it as each shard is read.</summary>
    public static TokenBatchLoader FromShards(IEnumerable<string> files, int batchSize, int sequenceLength, ulong? shuffleSeed = null, int? vocabularySize = null)
    {
        var paths = files.OrderBy(f => f, StringComparer.Ordinal).ToList();
        if (paths.Count == 0) throw new DataFormatException("No token shards found.");
        var shards = paths.Select(p => TokenShard.Read(p, vocabularySize)).ToList();
        long total = shards.Sum(s => (long)s.Length);
        if (total > Array.MaxLength)
            throw new DataFormatException($"{string.Join(", ", paths)}: {total} tokens in all, more than one training stream can hold ({Array.MaxLength}).");
        var tokens = new int[total];
        int at = 0;
        foreach (var shard in shards)
            foreach (var t in shard) tokens[at++] = t;
        return new TokenBatchLoader(tokens, batchSize, sequenceLength, shuffleSeed, string.Join(", ", paths));
    }

    public int BatchSize { get; }
    public int SequenceLength { get; }
    public int TokenCount => _tokens.Length;
    /// <summary>Batches in one pass over the data.</summary>
    public int BatchesPerEpoch => _windows / BatchSize;

    /// <summary>The batch for optimisation step <paramref name="step"/> (0-based).</summary>
    public (Tensor Inputs, Tensor Targets) Batch(long step)
    {
        int epoch = (int)(step / BatchesPerEpoch), first = (int)(step % BatchesPerEpoch) * BatchSize;
        var order = EpochOrder(epoch);
        int T = SequenceLength;
        var x = new int[BatchSize * T];
        var y = new int[BatchSize * T];
        for (int b = 0; b < BatchSize; b++)
        {
            int start = (order?[first + b] ?? first + b) * T;
            Array.Copy(_tokens, start, x, b * T, T);
            Array.Copy(_tokens, start + 1, y, b * T, T);
        }
        return (Tensor.FromArray(x, BatchSize, T), Tensor.FromArray(y, BatchSize, T));
    }

    private int[]? EpochOrder(int epoch)
    {
        if (_seed is not { } seed) return null;
        if (epoch != _cachedEpoch)
        {
            _order = Enumerable.Range(0, _windows).ToArray();
            new Generator(seed + (ulong)epoch).Shuffle(_order.AsSpan());
            _cachedEpoch = epoch;
        }
        return _order;
    }
}
