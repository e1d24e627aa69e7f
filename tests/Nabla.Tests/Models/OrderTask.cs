namespace Nabla.Tests.Models;

/// <summary>
/// A classification task only word order can solve: each text holds the words "alpha" and "beta" among filler words;
/// the label says which comes first. Texts come in twins, the second the first with alpha and beta swapped, so both
/// twins have the same bag of words and opposite labels: any bag-of-words classifier gets exactly half of them right.
/// </summary>
public static class OrderTask
{
    public static readonly string[] Labels = ["alpha-first", "beta-first"];
    private static readonly string[] Fillers = ["the", "a", "red", "blue", "cat", "dog", "runs", "sleeps", "near", "far"];

    /// <summary><paramref name="pairs"/> twin pairs of (words, label), lengths 4 to 10 words.</summary>
    public static List<(string[] Words, int Label)> Generate(int pairs, int seed)
    {
        var random = new Random(seed);
        var texts = new List<(string[], int)>(2 * pairs);
        for (int p = 0; p < pairs; p++)
        {
            int length = random.Next(4, 11);
            var words = Enumerable.Range(0, length).Select(_ => Fillers[random.Next(Fillers.Length)]).ToArray();
            int first = random.Next(length - 1), second = random.Next(first + 1, length);
            var alphaFirst = (string[])words.Clone();
            (alphaFirst[first], alphaFirst[second]) = ("alpha", "beta");
            var betaFirst = (string[])words.Clone();
            (betaFirst[first], betaFirst[second]) = ("beta", "alpha");
            texts.Add((alphaFirst, 0));
            texts.Add((betaFirst, 1));
        }
        return texts;
    }
}
