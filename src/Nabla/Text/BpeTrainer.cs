using System.Runtime.InteropServices;

namespace Nabla.Text;

/// <summary>
/// Learns a GPT-2-style byte-level BPE vocabulary from a corpus (Sennrich et al. 2016 on bytes, as in GPT-2):
/// <list type="number">
/// <item>Split the corpus into pre-tokens with <see cref="Gpt2PreTokenizer"/> (at "&lt;|endoftext|&gt;" first,
/// which is never learned from) and count each distinct pre-token.</item>
/// <item>Start every pre-token as its UTF-8 bytes, one token each; count every adjacent pair of tokens,
/// weighted by how often its pre-token occurs.</item>
/// <item>Repeatedly merge the most frequent pair into a new token, until the vocabulary is full or no pair
/// occurs <see cref="MinPairCount"/> times. Only the pre-tokens that contain the pair are rewritten, and only
/// their pair counts change (an index from pair to pre-tokens finds them); a max-heap with lazy deletion picks
/// the next pair.</item>
/// </list>
/// The result is a <see cref="Gpt2Tokenizer"/>: ids 0–255 are the byte tokens in GPT-2's order, then the
/// learned tokens in the order they were learned, then "&lt;|endoftext|&gt;"; <see cref="Gpt2Tokenizer.Save"/>
/// writes encoder.json + vocab.bpe.
/// <para>
/// Ties are broken deterministically: among pairs of equal count, the one with the smaller left token id
/// wins, then the smaller right token id. Ids follow the order tokens were created, so the same corpus and
/// settings always give the same merges, regardless of hashing or thread timing.
/// </para>
/// </summary>
public sealed class BpeTrainer
{
    private const int ByteTokenCount = 256;

    /// <summary>A trainer for a vocabulary of at most <paramref name="vocabSize"/> tokens (byte tokens and "&lt;|endoftext|&gt;" included).</summary>
    public BpeTrainer(int vocabSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabSize, ByteTokenCount + 1, nameof(vocabSize));
        VocabSize = vocabSize;
    }

    /// <summary>Largest vocabulary to learn, counting the 256 byte tokens and "&lt;|endoftext|&gt;".</summary>
    public int VocabSize { get; }

    /// <summary>Training stops early when the most frequent pair occurs fewer times than this.</summary>
    public int MinPairCount { get; init; } = 2;

    /// <summary>Learns merges from <paramref name="corpus"/>.</summary>
    public Gpt2Tokenizer Train(string corpus) => Train([corpus]);

    /// <summary>Learns merges from several documents (pre-tokens never span two documents).</summary>
    public Gpt2Tokenizer Train(IEnumerable<string> documents)
    {
        var tokens = new List<string>(VocabSize);
        var idOfToken = new Dictionary<string, int>(StringComparer.Ordinal);
        var idOfByte = new int[ByteTokenCount];
        foreach (int value in Enumerable.Range(0, ByteTokenCount).OrderBy(value => ByteLevelAlphabet.ToChar((byte)value)))
        {
            idOfByte[value] = tokens.Count;
            idOfToken.Add(ByteLevelAlphabet.ToChar((byte)value).ToString(), tokens.Count);
            tokens.Add(ByteLevelAlphabet.ToChar((byte)value).ToString());
        }

        var words = new WordTable(CountPreTokens(documents), idOfByte);
        var merges = new List<(string Left, string Right)>();
        var mergedPairs = new HashSet<long>();
        var queue = new PriorityQueue<long, PairPriority>(words.PairCounts.Count, PairPriority.MostFrequentFirst);
        foreach (var (pair, count) in words.PairCounts) queue.Enqueue(pair, new PairPriority(count, pair));

        while (idOfToken.Count < VocabSize - 1 && queue.TryDequeue(out long pair, out var priority))
        {
            long count = words.PairCounts.GetValueOrDefault(pair);
            if (count != priority.Count)
            {
                // Stale: the pair lost occurrences to earlier merges since this entry was queued.
                if (count >= MinPairCount) queue.Enqueue(pair, new PairPriority(count, pair));
                continue;
            }
            if (count < MinPairCount) break;

            var (leftId, rightId) = UnpackPair(pair);
            string merged = tokens[leftId] + tokens[rightId];
            // Two merge paths can spell the same token (a+bc, ab+c); both then map to one id.
            if (!idOfToken.TryGetValue(merged, out int mergedId))
            {
                mergedId = tokens.Count;
                tokens.Add(merged);
                idOfToken.Add(merged, mergedId);
            }
            // A merge that re-creates an existing token (ab+c after a+bc) can bring back a pair merged before,
            // e.g. (x, abc): it is merged again in the corpus, but the merges list keeps its first rank, which is
            // where the encoder will apply it.
            if (mergedPairs.Add(pair)) merges.Add((tokens[leftId], tokens[rightId]));

            foreach (long grownPair in words.Merge(pair, leftId, rightId, mergedId))
                queue.Enqueue(grownPair, new PairPriority(words.PairCounts[grownPair], grownPair));
        }

        idOfToken.Add(Gpt2Tokenizer.EndOfTextToken, tokens.Count);
        return new Gpt2Tokenizer(idOfToken, merges);
    }

    private static Dictionary<string, long> CountPreTokens(IEnumerable<string> documents)
    {
        var countOfPreToken = new Dictionary<string, long>(StringComparer.Ordinal);
        var countOfPreTokenSpan = countOfPreToken.GetAlternateLookup<ReadOnlySpan<char>>();
        foreach (string document in documents)
        {
            ReadOnlySpan<char> rest = SurrogateEscape.ReplaceUnpairedSurrogates(document);
            while (!rest.IsEmpty)
            {
                int special = rest.IndexOf(Gpt2Tokenizer.EndOfTextToken, StringComparison.Ordinal);
                var segment = special < 0 ? rest : rest[..special];
                for (int start = 0; start < segment.Length;)
                {
                    int length = Gpt2PreTokenizer.TokenLength(segment, start);
                    CollectionsMarshal.GetValueRefOrAddDefault(countOfPreTokenSpan, segment.Slice(start, length), out _)++;
                    start += length;
                }
                rest = special < 0 ? [] : rest[(special + Gpt2Tokenizer.EndOfTextToken.Length)..];
            }
        }
        return countOfPreToken;
    }

    private static long PackPair(int leftId, int rightId) => (long)leftId << 32 | (uint)rightId;

    private static (int Left, int Right) UnpackPair(long pair) => ((int)(pair >> 32), (int)pair);

    /// <summary>A pair's place in the queue: higher count first, then smaller packed (left, right) ids.</summary>
    private readonly record struct PairPriority(long Count, long Pair)
    {
        public static readonly IComparer<PairPriority> MostFrequentFirst = Comparer<PairPriority>.Create((x, y) =>
            x.Count != y.Count ? y.Count.CompareTo(x.Count) : x.Pair.CompareTo(y.Pair));
    }

    /// <summary>
    /// The distinct pre-tokens as token sequences, with how often each occurs, the total count of every adjacent
    /// pair and, for each pair, the pre-tokens that (may) contain it.
    /// </summary>
    private sealed class WordTable
    {
        private readonly int[][] symbols;
        private readonly int[] lengths;
        private readonly long[] occurrences;
        private readonly Dictionary<long, List<int>> wordsWithPair = new();
        private readonly int[] lastVisitedBy;
        private int mergeNumber;

        public Dictionary<long, long> PairCounts { get; } = new();

        public WordTable(Dictionary<string, long> countOfPreToken, int[] idOfByte)
        {
            symbols = new int[countOfPreToken.Count][];
            lengths = new int[countOfPreToken.Count];
            occurrences = new long[countOfPreToken.Count];
            lastVisitedBy = new int[countOfPreToken.Count];
            Span<byte> bytes = stackalloc byte[256];
            int word = 0;
            foreach (var (preToken, count) in countOfPreToken)
            {
                var buffer = preToken.Length * 3 <= bytes.Length ? bytes : new byte[preToken.Length * 3];
                int byteCount = SurrogateEscape.Encode(preToken, buffer);
                symbols[word] = new int[byteCount];
                for (int i = 0; i < byteCount; i++) symbols[word][i] = idOfByte[buffer[i]];
                lengths[word] = byteCount;
                occurrences[word] = count;
                AddPairs(word, newToken: -1, grownPairs: null);
                word++;
            }
        }

        /// <summary>
        /// Rewrites every pre-token containing (left, right) with the merged token, left to right as the
        /// encoder merges, and returns the pairs whose counts grew (those with the merged token).
        /// </summary>
        public HashSet<long> Merge(long pair, int leftId, int rightId, int mergedId)
        {
            mergeNumber++;
            var grownPairs = new HashSet<long>();
            // Merging removes every occurrence of the pair, so its index entry is done with; should a later
            // merge re-create the pair, AddPairs indexes it afresh.
            wordsWithPair.Remove(pair, out var candidates);
            foreach (int word in candidates!)
            {
                // A pre-token is listed once per occurrence of the pair, and may have lost it since.
                if (lastVisitedBy[word] == mergeNumber) continue;
                lastVisitedBy[word] = mergeNumber;
                if (!Contains(word, leftId, rightId)) continue;

                RemovePairs(word);
                var wordSymbols = symbols[word];
                int length = lengths[word], written = 0;
                for (int read = 0; read < length; written++)
                {
                    bool merges = read + 1 < length && wordSymbols[read] == leftId && wordSymbols[read + 1] == rightId;
                    wordSymbols[written] = merges ? mergedId : wordSymbols[read];
                    read += merges ? 2 : 1;
                }
                lengths[word] = written;
                AddPairs(word, mergedId, grownPairs);
            }
            return grownPairs;
        }

        private bool Contains(int word, int leftId, int rightId)
        {
            var wordSymbols = symbols[word];
            for (int i = 0; i + 1 < lengths[word]; i++)
                if (wordSymbols[i] == leftId && wordSymbols[i + 1] == rightId) return true;
            return false;
        }

        private void RemovePairs(int word)
        {
            var wordSymbols = symbols[word];
            for (int i = 0; i + 1 < lengths[word]; i++)
            {
                long pair = PackPair(wordSymbols[i], wordSymbols[i + 1]);
                ref long count = ref CollectionsMarshal.GetValueRefOrNullRef(PairCounts, pair);
                count -= occurrences[word];
                if (count == 0) PairCounts.Remove(pair);
            }
        }

        /// <summary>
        /// Counts the word's pairs; pairs with <paramref name="newToken"/> (all pairs when it is −1, at the
        /// start) are new to this word, so the word is indexed under them.
        /// </summary>
        private void AddPairs(int word, int newToken, HashSet<long>? grownPairs)
        {
            var wordSymbols = symbols[word];
            for (int i = 0; i + 1 < lengths[word]; i++)
            {
                long pair = PackPair(wordSymbols[i], wordSymbols[i + 1]);
                CollectionsMarshal.GetValueRefOrAddDefault(PairCounts, pair, out _) += occurrences[word];
                if (newToken >= 0 && wordSymbols[i] != newToken && wordSymbols[i + 1] != newToken) continue;
                ref var list = ref CollectionsMarshal.GetValueRefOrAddDefault(wordsWithPair, pair, out _);
                (list ??= []).Add(word);
                grownPairs?.Add(pair);
            }
        }
    }
}
