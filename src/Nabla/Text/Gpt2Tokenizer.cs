using System.Buffers;
using System.Collections.Concurrent;
using System.Text;

namespace Nabla.Text;

/// <summary>
/// GPT-2's byte-level BPE tokenizer (Radford et al. 2019, §2.2): text → UTF-8 bytes, split into pre-tokens by
/// <see cref="Gpt2PreTokenizer"/>, each pre-token's bytes merged pairwise by priority (rank) from the merges
/// file until no listed pair remains; the resulting tokens' ids come from the vocabulary. Decoding
/// concatenates the tokens' bytes and reads them as UTF-8. Loads OpenAI's <c>encoder.json</c> +
/// <c>vocab.bpe</c>, Hugging Face's <c>vocab.json</c> + <c>merges.txt</c>, or Hugging Face's <c>tokenizer.json</c>,
/// and is safe to use from several threads at once.
/// </summary>
public sealed class Gpt2Tokenizer : ITokenizer
{
    /// <summary>GPT-2's document separator; its id is 50256 in GPT-2's vocabulary.</summary>
    public const string EndOfTextToken = "<|endoftext|>";

    /// <summary>Inputs shorter than this are encoded on one thread: splitting them costs more than it saves.</summary>
    private const int ParallelThresholdChars = 1 << 17;

    /// <summary>
    /// Bound on cached pre-tokens, so a huge varied corpus cannot grow the cache without limit. Frequent pieces
    /// appear early, so the ones cached before the bound is reached carry most of the benefit.
    /// </summary>
    private const int MaxCachedPreTokens = 1 << 18;

    /// <summary>Elements in each stack buffer of the merge loop; longer pre-tokens rent pooled arrays instead.</summary>
    private const int StackBufferLength = 256;

    private readonly string[] tokenOfId;
    private readonly byte[][] bytesOfId;
    private readonly int[] idOfByte = new int[256];
    private readonly Dictionary<long, MergeRule> mergeOfPair;
    private readonly (string Left, string Right)[] merges;
    private readonly (string Text, int Id)[] specialTokens;
    private readonly bool specialTokenHasWhitespace;
    private readonly ConcurrentDictionary<string, int[]> idsOfPreToken = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> idsOfPreTokenSpan;
    private int cachedPreTokenCount;

    /// <summary>What merging a pair gives: its priority (lower merges first) and the id of the merged token.</summary>
    private readonly record struct MergeRule(int Rank, int MergedId);

    /// <summary>
    /// Builds a tokenizer from a vocabulary (token → id, ids 0..N−1 without gaps, tokens in
    /// <see cref="ByteLevelAlphabet"/> characters, all 256 single-byte tokens present) and merges in priority
    /// order. A pair's merged token (left + right) must be in the vocabulary.
    /// </summary>
    public Gpt2Tokenizer(IReadOnlyDictionary<string, int> vocabulary, IEnumerable<(string Left, string Right)> merges)
        : this(vocabulary, merges.Select((merge, index) => new MergeLine(merge.Left, merge.Right, index + 1)).ToList(),
               vocabularySource: "vocabulary", mergeLocation: line => $"merge {line}", specialTokens: null)
    {
    }

    /// <param name="specialTokens">Tokens that <see cref="Encode(string, bool)"/> recognises whole when special
    /// tokens are allowed; null: &lt;|endoftext|&gt;, if the vocabulary has it.</param>
    private Gpt2Tokenizer(IReadOnlyDictionary<string, int> vocabulary, List<MergeLine> mergeLines,
                          string vocabularySource, Func<int, string> mergeLocation, IReadOnlyList<string>? specialTokens)
    {
        tokenOfId = BuildTokenOfId(vocabulary, vocabularySource);
        bytesOfId = new byte[tokenOfId.Length][];
        for (int id = 0; id < tokenOfId.Length; id++)
            bytesOfId[id] = ByteLevelAlphabet.TryToBytes(tokenOfId[id], out byte[] bytes) ? bytes : Encoding.UTF8.GetBytes(tokenOfId[id]);

        for (int value = 0; value < 256; value++)
        {
            char c = ByteLevelAlphabet.ToChar((byte)value);
            if (!vocabulary.TryGetValue(c.ToString(), out idOfByte[value]))
                throw new ArgumentException($"{vocabularySource}: no token for byte 0x{value:X2} (\"{c}\"); a byte-level vocabulary needs all 256.");
        }

        mergeOfPair = new Dictionary<long, MergeRule>(mergeLines.Count, PairKeyComparer.Instance);
        var firstLineOfPair = new Dictionary<long, int>(mergeLines.Count);
        merges = new (string, string)[mergeLines.Count];
        for (int rank = 0; rank < mergeLines.Count; rank++)
        {
            var (left, right, line) = mergeLines[rank];
            string Problem(string what) => $"{mergeLocation(line)}: merge \"{left} {right}\" {what}.";
            if (!vocabulary.TryGetValue(left, out int leftId)) throw new ArgumentException(Problem($"uses \"{left}\", which is not in {vocabularySource}"));
            if (!vocabulary.TryGetValue(right, out int rightId)) throw new ArgumentException(Problem($"uses \"{right}\", which is not in {vocabularySource}"));
            if (!vocabulary.TryGetValue(left + right, out int mergedId)) throw new ArgumentException(Problem($"makes \"{left + right}\", which is not in {vocabularySource}"));
            long pair = PairKey(leftId, rightId);
            if (!firstLineOfPair.TryAdd(pair, line)) throw new ArgumentException(Problem($"repeats {mergeLocation(firstLineOfPair[pair])}"));
            mergeOfPair.Add(pair, new MergeRule(rank, mergedId));
            merges[rank] = (left, right);
        }

        EndOfTextId = vocabulary.TryGetValue(EndOfTextToken, out int endOfText) ? endOfText : null;
        this.specialTokens = (specialTokens ?? (EndOfTextId is null ? [] : [EndOfTextToken]))
            .Select(text => (text, vocabulary.TryGetValue(text, out int id) ? id : throw new ArgumentException($"{vocabularySource}: special token \"{text}\" is not in the vocabulary.")))
            .ToArray();
        specialTokenHasWhitespace = this.specialTokens.Any(special => special.Text.Any(char.IsWhiteSpace));
        idsOfPreTokenSpan = idsOfPreToken.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>
    /// Loads the tokenizer in <paramref name="directory"/>: <c>encoder.json</c> + <c>vocab.bpe</c> (OpenAI's
    /// names) or <c>vocab.json</c> + <c>merges.txt</c> (Hugging Face's).
    /// </summary>
    public static Gpt2Tokenizer FromDirectory(string directory)
    {
        var (vocabularyPath, mergesPath) = Gpt2TokenizerFiles.Locate(directory);
        return FromFiles(vocabularyPath, mergesPath);
    }

    /// <summary>Loads a vocabulary JSON file and a merges file; problems are reported with the file and line.</summary>
    public static Gpt2Tokenizer FromFiles(string vocabularyPath, string mergesPath)
    {
        var vocabulary = Gpt2TokenizerFiles.ReadVocabulary(vocabularyPath);
        var mergeLines = Gpt2TokenizerFiles.ReadMerges(mergesPath);
        try
        {
            return new Gpt2Tokenizer(vocabulary, mergeLines, vocabularyPath, line => $"{mergesPath}:{line}", specialTokens: null);
        }
        catch (ArgumentException e)
        {
            // The message already starts with the vocabulary's path or the merges file's "path:line".
            throw new TokenizerFileException(e.Message, e);
        }
    }

    /// <summary>
    /// Loads Hugging Face's <c>tokenizer.json</c> of a byte-level BPE (GPT-2's kind): <c>model.vocab</c>,
    /// <c>model.merges</c> in either form, and <c>added_tokens</c>, which become this tokenizer's special tokens
    /// (recognised when special tokens are allowed; an added token missing from the vocabulary takes its id).
    /// Settings that would tokenize differently from GPT-2 are refused with the key that says so.
    /// </summary>
    public static Gpt2Tokenizer FromTokenizerJson(string path)
    {
        using var document = TokenizerFiles.ReadJson(path);
        return FromTokenizerJson(path, document.RootElement);
    }

    internal static Gpt2Tokenizer FromTokenizerJson(string path, System.Text.Json.JsonElement root)
    {
        var (vocabulary, mergeLines, addedTokens) = HuggingFaceTokenizerFile.Read(path, root);
        for (int i = 0; i < addedTokens.Count; i++)
        {
            var (content, id) = addedTokens[i];
            if (!vocabulary.TryAdd(content, id) && vocabulary[content] != id)
                throw new TokenizerFileException($"{path}: added_tokens[{i}] \"{content}\" has id {id}, but model.vocab gives it {vocabulary[content]}.");
        }
        try
        {
            return new Gpt2Tokenizer(vocabulary, mergeLines, path, line => $"{path}: model.merges[{line - 1}]",
                addedTokens.Select(token => token.Content).Distinct().ToList());
        }
        catch (ArgumentException e)
        {
            throw new TokenizerFileException(e.Message, e);
        }
    }

    /// <summary>Writes <c>encoder.json</c> and <c>vocab.bpe</c> into <paramref name="directory"/> (created if needed) in OpenAI's exact format.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        Gpt2TokenizerFiles.WriteVocabulary(Path.Combine(directory, Gpt2TokenizerFiles.OpenAIVocabularyName), tokenOfId);
        Gpt2TokenizerFiles.WriteMerges(Path.Combine(directory, Gpt2TokenizerFiles.OpenAIMergesName), merges);
    }

    public int VocabSize => tokenOfId.Length;

    /// <summary>Id of <c>&lt;|endoftext|&gt;</c>, or null when the vocabulary has no such token.</summary>
    public int? EndOfTextId { get; }

    /// <summary>The tokens recognised whole when special tokens are allowed (&lt;|endoftext|&gt;, or tokenizer.json's added tokens).</summary>
    public IReadOnlyList<string> SpecialTokens => specialTokens.Select(special => special.Text).ToArray();

    /// <summary>The merges in priority order, as read (left and right token strings).</summary>
    public IReadOnlyList<(string Left, string Right)> Merges => Array.AsReadOnly(merges);

    /// <summary>Most threads one <see cref="Encode(string)"/> call of a long text may use; 1 encodes on the calling thread only.</summary>
    public int MaxDegreeOfParallelism
    {
        get => maxDegreeOfParallelism;
        set => maxDegreeOfParallelism = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "at least 1 thread is needed.");
    }

    private int maxDegreeOfParallelism = Environment.ProcessorCount;

    /// <summary>The token string of <paramref name="id"/> (in <see cref="ByteLevelAlphabet"/> characters).</summary>
    public string TokenOf(int id) => tokenOfId[CheckId(id)];

    /// <summary>
    /// Encodes <paramref name="text"/> as ordinary text: a literal "&lt;|endoftext|&gt;" in it is encoded as the
    /// characters it is made of, not as the separator, so text from the wild cannot inject one. Training code
    /// appends <see cref="EndOfTextId"/> itself, or calls <see cref="Encode(string, bool)"/>.
    /// </summary>
    public int[] Encode(string text) => Encode(text, allowSpecialTokens: false);

    /// <summary>
    /// Encodes <paramref name="text"/>; with <paramref name="allowSpecialTokens"/>, each of the <see cref="SpecialTokens"/>
    /// (e.g. "&lt;|endoftext|&gt;") becomes its id. Unpaired surrogates are encoded as U+FFFD, as <see cref="Encoding.UTF8"/> does.
    /// </summary>
    public int[] Encode(string text, bool allowSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        return EncodeChars(SurrogateEscape.ReplaceUnpairedSurrogates(text), allowSpecialTokens);
    }

    /// <summary>
    /// Encodes arbitrary bytes, so that <c>DecodeBytes(EncodeBytes(b))</c> reproduces any <c>b</c>, including bytes
    /// that are not valid UTF-8. Valid UTF-8 encodes exactly as its text does; each byte that is not part of a
    /// valid UTF-8 sequence is pre-tokenised as an "other" character on its own and then merged like any byte.
    /// </summary>
    public int[] EncodeBytes(ReadOnlySpan<byte> bytes, bool allowSpecialTokens = false) =>
        EncodeChars(SurrogateEscape.Decode(bytes), allowSpecialTokens);

    /// <summary>The bytes the tokens stand for, concatenated.</summary>
    public byte[] DecodeBytes(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var output = new ArrayBufferWriter<byte>();
        foreach (int id in ids) output.Write(bytesOfId[CheckId(id)]);
        return output.WrittenSpan.ToArray();
    }

    /// <summary>
    /// The text of the tokens: their bytes read as UTF-8, each invalid sequence (e.g. a character cut between
    /// two tokens at the end of a generated sample) becoming U+FFFD, as Hugging Face and tiktoken decode.
    /// </summary>
    public string Decode(IEnumerable<int> ids) => Encoding.UTF8.GetString(DecodeBytes(ids));

    private int CheckId(int id) =>
        (uint)id < (uint)tokenOfId.Length ? id : throw new ArgumentOutOfRangeException(nameof(id), id, $"token id {id} is outside the vocabulary [0, {tokenOfId.Length}).");

    /// <summary>Encodes text whose unpaired surrogates (if any) are <see cref="SurrogateEscape"/> byte escapes.</summary>
    private int[] EncodeChars(string text, bool allowSpecialTokens)
    {
        if (allowSpecialTokens && specialTokens.Length == 0)
            throw new InvalidOperationException($"special tokens were allowed but the vocabulary has none (no {EndOfTextToken}).");

        var chunks = allowSpecialTokens && specialTokenHasWhitespace ? [(0, text.Length)] : ParallelChunks(text);
        if (chunks.Count == 1)
        {
            var ids = new IdWriter(text.Length / 4 + 16);
            EncodeSegment(text, allowSpecialTokens, ref ids);
            return ids.ToArray();
        }

        var idsOfChunk = new int[chunks.Count][];
        Parallel.For(0, chunks.Count, new ParallelOptions { MaxDegreeOfParallelism = MaxDegreeOfParallelism }, chunk =>
        {
            var ids = new IdWriter(chunks[chunk].Length / 4 + 16);
            EncodeSegment(text.AsSpan(chunks[chunk].Start, chunks[chunk].Length), allowSpecialTokens, ref ids);
            idsOfChunk[chunk] = ids.ToArray();
        });
        var all = new int[idsOfChunk.Sum(ids => ids.Length)];
        int offset = 0;
        foreach (var ids in idsOfChunk)
        {
            ids.CopyTo(all, offset);
            offset += ids.Length;
        }
        return all;
    }

    /// <summary>
    /// Cuts a long text into pieces that encode independently: each cut is moved forward to the next
    /// whitespace-after-non-whitespace position, which is always a pre-token boundary, and cannot fall inside
    /// a special token without whitespace such as "&lt;|endoftext|&gt;" (texts are not cut when one has whitespace). A short text, or one without such positions, stays whole.
    /// </summary>
    private List<(int Start, int Length)> ParallelChunks(string text)
    {
        int threads = Math.Min(MaxDegreeOfParallelism, Environment.ProcessorCount);
        if (threads <= 1 || text.Length < ParallelThresholdChars) return [(0, text.Length)];

        // A few chunks per thread even out the work when some parts of the text are slower to encode.
        int chunkCount = Math.Min(threads * 4, text.Length / (ParallelThresholdChars / 4));
        var chunks = new List<(int, int)>(chunkCount);
        int start = 0;
        for (int chunk = 1; chunk < chunkCount; chunk++)
        {
            int cut = Math.Max(start + 1, (int)((long)text.Length * chunk / chunkCount));
            while (cut < text.Length && !Gpt2PreTokenizer.IsIndependentBoundary(text, cut)) cut++;
            if (cut >= text.Length) break;
            chunks.Add((start, cut - start));
            start = cut;
        }
        chunks.Add((start, text.Length - start));
        return chunks;
    }

    /// <summary>Encodes a stretch of text, splitting it at special tokens first when they are allowed.</summary>
    private void EncodeSegment(ReadOnlySpan<char> text, bool allowSpecialTokens, ref IdWriter ids)
    {
        while (allowSpecialTokens)
        {
            // The earliest special token; of two starting at the same place, the longer.
            int at = -1, which = -1;
            for (int i = 0; i < specialTokens.Length; i++)
            {
                int found = text.IndexOf(specialTokens[i].Text, StringComparison.Ordinal);
                if (found >= 0 && (at < 0 || found < at || found == at && specialTokens[i].Text.Length > specialTokens[which].Text.Length))
                    (at, which) = (found, i);
            }
            if (at < 0) break;
            EncodeOrdinary(text[..at], ref ids);
            ids.Add(specialTokens[which].Id);
            text = text[(at + specialTokens[which].Text.Length)..];
        }
        EncodeOrdinary(text, ref ids);
    }

    private void EncodeOrdinary(ReadOnlySpan<char> text, ref IdWriter ids)
    {
        for (int start = 0; start < text.Length;)
        {
            int length = Gpt2PreTokenizer.TokenLength(text, start);
            ids.AddRange(IdsOfPreToken(text.Slice(start, length)));
            start += length;
        }
    }

    /// <summary>The ids of one pre-token, from the cache or by running the merges.</summary>
    private int[] IdsOfPreToken(ReadOnlySpan<char> preToken)
    {
        if (idsOfPreTokenSpan.TryGetValue(preToken, out int[]? cached)) return cached;

        int maxBytes = preToken.Length * 3;
        byte[]? rented = maxBytes > StackBufferLength ? ArrayPool<byte>.Shared.Rent(maxBytes) : null;
        Span<byte> bytes = rented is null ? stackalloc byte[StackBufferLength] : rented;
        int byteCount = SurrogateEscape.Encode(preToken, bytes);
        int[] ids = MergeBytes(bytes[..byteCount]);
        if (rented is not null) ArrayPool<byte>.Shared.Return(rented);

        if (Volatile.Read(ref cachedPreTokenCount) < MaxCachedPreTokens && idsOfPreTokenSpan.TryAdd(preToken, ids))
            Interlocked.Increment(ref cachedPreTokenCount);
        return ids;
    }

    /// <summary>
    /// BPE on one pre-token, GPT-2's way: starting from one token per byte, find the adjacent pair of lowest
    /// rank, merge all its occurrences left to right, and repeat until no adjacent pair has a merge. The
    /// symbols form a linked list over arrays and every adjacent pair that has a merge sits in a min-heap keyed
    /// by (rank, position), so a merge costs O(log n) and nothing is allocated. Entries of one rank pop in
    /// position order, i.e. left to right; the pairs that a round of merges creates are pushed only after the
    /// round, so none of them can cut in. An entry whose pair has changed since it was pushed is recognised on
    /// popping (its pair no longer has that rank) and skipped.
    /// </summary>
    private int[] MergeBytes(ReadOnlySpan<byte> bytes)
    {
        int count = bytes.Length;
        if (count == 1) return [idOfByte[bytes[0]]];

        // ids, next, prev and this round's merged positions per position, plus a heap of up to 3·count entries
        // (count−1 initial pairs, at most two new pairs per merge, at most count−1 merges).
        int needed = 4 * count;
        int[]? rentedInts = needed > StackBufferLength ? ArrayPool<int>.Shared.Rent(needed) : null;
        long[]? rentedHeap = needed > StackBufferLength ? ArrayPool<long>.Shared.Rent(needed) : null;
        Span<int> ints = rentedInts is null ? stackalloc int[StackBufferLength] : rentedInts;
        Span<long> heapStorage = rentedHeap is null ? stackalloc long[StackBufferLength] : rentedHeap;
        Span<int> idAt = ints[..count], next = ints.Slice(count, count), prev = ints.Slice(2 * count, count);
        Span<int> mergedThisRound = ints.Slice(3 * count, count);
        var heap = new MinHeap(heapStorage);

        for (int i = 0; i < count; i++)
        {
            idAt[i] = idOfByte[bytes[i]];
            next[i] = i + 1;
            prev[i] = i - 1;
        }
        for (int i = 0; i + 1 < count; i++)
            if (mergeOfPair.TryGetValue(PairKey(idAt[i], idAt[i + 1]), out var rule)) heap.Push(HeapEntry(rule.Rank, i));

        int remaining = count;
        while (heap.Count > 0)
        {
            int rank = (int)(heap.Peek() >> 32), merged = 0;
            while (heap.Count > 0 && (int)(heap.Peek() >> 32) == rank)
            {
                int left = (int)heap.Pop();
                if (idAt[left] < 0) continue;
                int right = next[left];
                if (right >= count || !mergeOfPair.TryGetValue(PairKey(idAt[left], idAt[right]), out var rule) || rule.Rank != rank) continue;

                // The left symbol becomes the merged token; the right one leaves the list.
                idAt[left] = rule.MergedId;
                idAt[right] = -1;
                next[left] = next[right];
                if (next[right] < count) prev[next[right]] = left;
                remaining--;
                mergedThisRound[merged++] = left;
            }

            foreach (int position in mergedThisRound[..merged])
            {
                if (prev[position] >= 0 && mergeOfPair.TryGetValue(PairKey(idAt[prev[position]], idAt[position]), out var before))
                    heap.Push(HeapEntry(before.Rank, prev[position]));
                if (next[position] < count && mergeOfPair.TryGetValue(PairKey(idAt[position], idAt[next[position]]), out var after))
                    heap.Push(HeapEntry(after.Rank, position));
            }
        }

        // Position 0 is never removed (merges remove the right symbol), so the list starts there.
        var result = new int[remaining];
        for (int i = 0, position = 0; position < count; position = next[position]) result[i++] = idAt[position];

        if (rentedInts is not null) ArrayPool<int>.Shared.Return(rentedInts);
        if (rentedHeap is not null) ArrayPool<long>.Shared.Return(rentedHeap);
        return result;
    }

    private static long PairKey(int leftId, int rightId) => (long)leftId << 32 | (uint)rightId;

    /// <summary>Orders by rank, then by position, so that equal ranks merge leftmost first, as GPT-2 does.</summary>
    private static long HeapEntry(int rank, int position) => (long)rank << 32 | (uint)position;

    private static string[] BuildTokenOfId(IReadOnlyDictionary<string, int> vocabulary, string source)
    {
        var tokenOfId = new string?[vocabulary.Count];
        foreach (var (token, id) in vocabulary)
        {
            if ((uint)id >= (uint)tokenOfId.Length)
                throw new ArgumentException($"{source}: token \"{token}\" has id {id}, but ids must run from 0 to {tokenOfId.Length - 1} (one per token).");
            if (tokenOfId[id] is { } other)
                throw new ArgumentException($"{source}: tokens \"{other}\" and \"{token}\" share id {id}.");
            tokenOfId[id] = token;
        }
        return tokenOfId!;
    }

    /// <summary>
    /// Hashes packed pairs well: long's own hash XORs the two halves, so (left, right) and (right, left), and
    /// every pair with the same left ^ right, would share a bucket.
    /// </summary>
    private sealed class PairKeyComparer : IEqualityComparer<long>
    {
        public static readonly PairKeyComparer Instance = new();
        public bool Equals(long x, long y) => x == y;
        public int GetHashCode(long pair) => (int)((ulong)pair * 0x9E3779B97F4A7C15 >> 32);
    }

    /// <summary>A growable list of ids that hands out its array without an extra wrapper object.</summary>
    private struct IdWriter(int capacity)
    {
        private int[] buffer = new int[Math.Max(capacity, 16)];
        private int count;

        public void Add(int id)
        {
            if (count == buffer.Length) Array.Resize(ref buffer, buffer.Length * 2);
            buffer[count++] = id;
        }

        public void AddRange(int[] ids)
        {
            if (ids.Length == 1)
            {
                Add(ids[0]);
                return;
            }
            if (count + ids.Length > buffer.Length) Array.Resize(ref buffer, Math.Max(buffer.Length * 2, count + ids.Length));
            ids.CopyTo(buffer, count);
            count += ids.Length;
        }

        public readonly int[] ToArray() => buffer.AsSpan(0, count).ToArray();
    }

    /// <summary>A binary min-heap of longs over caller-provided storage.</summary>
    private ref struct MinHeap(Span<long> storage)
    {
        private readonly Span<long> items = storage;
        public int Count { get; private set; }

        public void Push(long item)
        {
            int i = Count++;
            while (i > 0)
            {
                int parent = (i - 1) >> 1;
                if (items[parent] <= item) break;
                items[i] = items[parent];
                i = parent;
            }
            items[i] = item;
        }

        public readonly long Peek() => items[0];

        public long Pop()
        {
            long top = items[0], last = items[--Count];
            int i = 0;
            while (true)
            {
                int child = 2 * i + 1;
                if (child >= Count) break;
                if (child + 1 < Count && items[child + 1] < items[child]) child++;
                if (last <= items[child]) break;
                items[i] = items[child];
                i = child;
            }
            if (Count > 0) items[i] = last;
            return top;
        }
    }
}
