using System.Diagnostics;
using System.Text;
using Nabla.Text;
using Xunit.Abstractions;

namespace Nabla.Tests.Text;

public sealed class BpeTrainerTests(ITestOutputHelper output) : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("nabla-bpe-trainer").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private static string KjvSample(int length) => TextTestData.Kjv[..length];

    [Fact]
    public void TrainsOnAMegabyteSavesLoadsAndRoundTrips()
    {
        string corpus = KjvSample(1_000_000);
        var stopwatch = Stopwatch.StartNew();
        var trained = new BpeTrainer(vocabSize: 2000).Train(corpus);
        output.WriteLine($"trained {trained.Merges.Count} merges on {corpus.Length:N0} chars in {stopwatch.ElapsedMilliseconds} ms");

        Assert.Equal(2000, trained.VocabSize);
        Assert.Equal(2000 - 257, trained.Merges.Count);
        Assert.Equal(1999, trained.EndOfTextId);

        trained.Save(directory);
        var loaded = Gpt2Tokenizer.FromDirectory(directory);
        Assert.Equal(trained.VocabSize, loaded.VocabSize);
        Assert.Equal(trained.Merges, loaded.Merges);

        int[] ids = loaded.Encode(corpus);
        Assert.Equal(trained.Encode(corpus), ids);
        Assert.Equal(corpus, loaded.Decode(ids));
        double bytesPerToken = (double)Encoding.UTF8.GetByteCount(corpus) / ids.Length;
        output.WriteLine($"{bytesPerToken:F2} bytes per token on the training text");
        Assert.True(bytesPerToken > 3, $"only {bytesPerToken:F2} bytes per token");

        // Text unlike the corpus still round-trips: every byte has a token.
        var random = new Random(3);
        for (int trial = 0; trial < 300; trial++)
        {
            string text = Gpt2TokenizerTests.RandomText(random, 30, supplementaryLettersAndDigits: true);
            Assert.Equal(text, loaded.Decode(loaded.Encode(text)));
        }
        Assert.Equal([1999], loaded.Encode("<|endoftext|>", allowSpecialTokens: true));
    }

    [Fact]
    public void LearnsSensibleFirstMergesAndWholeWords()
    {
        var trained = new BpeTrainer(vocabSize: 1000).Train(KjvSample(1_000_000));
        var firstMerges = trained.Merges.Take(10).Select(merge => $"{merge.Left} {merge.Right}").ToList();
        output.WriteLine(string.Join(" | ", firstMerges));

        // The Bible's most frequent word builds first: "th" (the, that, thou, thee...), " th", " the"; then
        // " a" (and), "nd" — as GPT-2's own first merges are " t", " a", "he", "in", "re" on web text.
        Assert.Equal(["t h", "Ġ th", "Ġth e"], firstMerges.Take(3));
        Assert.Contains("Ġ a", firstMerges);
        Assert.Contains("n d", firstMerges);
        foreach (string word in new[] { " the", " and", " LORD", " unto" })
            Assert.Single(trained.Encode(word));
    }

    [Fact]
    public void ByteTokensComeFirstInGpt2Order()
    {
        var trained = new BpeTrainer(vocabSize: 300).Train(KjvSample(50_000));
        for (int id = 0; id < 256; id++) Assert.Equal(TextTestData.Gpt2.TokenOf(id), trained.TokenOf(id));
    }

    [Fact]
    public void TrainingIsDeterministic()
    {
        string corpus = KjvSample(200_000) + TextTestData.Jargon[..200_000];
        // Splitting the corpus into documents at a pre-token boundary changes nothing.
        int cut = 150_000;
        while (!Gpt2PreTokenizer.IsIndependentBoundary(corpus, cut)) cut++;
        var first = new BpeTrainer(vocabSize: 800).Train(corpus);
        var second = new BpeTrainer(vocabSize: 800).Train([corpus[..cut], corpus[cut..]]);
        Assert.Equal(first.Merges, second.Merges);

        first.Save(Path.Combine(directory, "a"));
        second.Save(Path.Combine(directory, "b"));
        foreach (string name in new[] { "encoder.json", "vocab.bpe" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(directory, "a", name)), File.ReadAllBytes(Path.Combine(directory, "b", name)));
    }

    [Fact]
    public void MatchesNaiveRecountingTrainer()
    {
        // The incremental pair-count updates must give exactly what recounting every pair after every merge gives.
        string corpus = TextTestData.Jargon[..40_000] + "\nÉtude für Straße — 日本語 😀😀 naïve\n" + KjvSample(20_000);
        var trained = new BpeTrainer(vocabSize: 450).Train(corpus);
        Assert.Equal(NaiveMerges(corpus, vocabSize: 450, minPairCount: 2), trained.Merges);
    }

    [Fact]
    public void StopsWhenNoPairIsFrequentEnough()
    {
        var trained = new BpeTrainer(vocabSize: 1000).Train("ab ab ab xy");
        // Pre-tokens "ab", " ab" (2×), " xy": "a b" occurs 3 times, then "Ġ ab" twice, then nothing twice.
        Assert.Equal([("a", "b"), ("Ġ", "ab")], trained.Merges);
        Assert.Equal(256 + 2 + 1, trained.VocabSize);
        // Allowing single occurrences adds "x y" (ties go to the smaller left id: 'x' = 87 < 'Ġ' = 220), then "Ġ xy".
        Assert.Equal([("a", "b"), ("Ġ", "ab"), ("x", "y"), ("Ġ", "xy")], new BpeTrainer(1000) { MinPairCount = 1 }.Train("ab ab ab xy").Merges);
    }

    [Fact]
    public void EndOfTextInCorpusSeparatesDocuments()
    {
        var trained = new BpeTrainer(vocabSize: 400).Train("hello<|endoftext|>hello<|endoftext|>hello");
        Assert.DoesNotContain(trained.Merges, merge => merge.Left.Contains('|') || merge.Right.Contains('|'));
        Assert.Equal([.. trained.Encode("hello"), trained.EndOfTextId!.Value], trained.Encode("hello<|endoftext|>", allowSpecialTokens: true));
    }

    [Fact]
    public void RejectsTooSmallVocabulary()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new BpeTrainer(vocabSize: 256));
    }

    /// <summary>
    /// Textbook BPE training, slow and obviously right: after every merge, recount all pairs from scratch;
    /// pick the highest count, ties to the smaller (left id, right id); merge left to right in every word.
    /// </summary>
    private static List<(string Left, string Right)> NaiveMerges(string corpus, int vocabSize, int minPairCount)
    {
        var tokens = Enumerable.Range(0, 256).Select(value => ByteLevelAlphabet.ToChar((byte)value).ToString()).Order(StringComparer.Ordinal).ToList();
        var words = Gpt2PreTokenizer.Split(corpus).GroupBy(piece => piece)
            .Select(group => (Symbols: Encoding.UTF8.GetBytes(group.Key).Select(b => tokens.IndexOf(ByteLevelAlphabet.ToChar(b).ToString())).ToList(), Count: group.Count()))
            .ToList();
        var merges = new List<(string, string)>();
        while (tokens.Count < vocabSize - 1)
        {
            var pairCounts = new Dictionary<(int, int), long>();
            foreach (var (symbols, count) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    pairCounts[(symbols[i], symbols[i + 1])] = pairCounts.GetValueOrDefault((symbols[i], symbols[i + 1])) + count;
            if (pairCounts.Count == 0) break;
            var best = pairCounts.OrderByDescending(entry => entry.Value).ThenBy(entry => entry.Key.Item1).ThenBy(entry => entry.Key.Item2).First();
            if (best.Value < minPairCount) break;

            var (left, right) = best.Key;
            string merged = tokens[left] + tokens[right];
            int mergedId = tokens.IndexOf(merged);
            if (mergedId < 0)
            {
                mergedId = tokens.Count;
                tokens.Add(merged);
            }
            if (!merges.Contains((tokens[left], tokens[right]))) merges.Add((tokens[left], tokens[right]));
            foreach (var (symbols, _) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    if (symbols[i] == left && symbols[i + 1] == right)
                    {
                        symbols[i] = mergedId;
                        symbols.RemoveAt(i + 1);
                    }
        }
        return merges;
    }
}
