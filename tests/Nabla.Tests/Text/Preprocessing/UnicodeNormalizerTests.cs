using System.Globalization;
using System.Text;
using Nabla.Text.Preprocessing;

namespace Nabla.Tests.Text.Preprocessing;

/// <summary>The Unicode Consortium's conformance test (NormalizationTest.txt of Unicode 15.0, from Debian's unicode-data).</summary>
public sealed class UnicodeNormalizerTests
{
    private static string Decode(string field) =>
        string.Concat(field.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(h => char.ConvertFromUtf32(int.Parse(h, NumberStyles.HexNumber))));

    private static string Nfc(string s) => UnicodeNormalizer.Normalize(s, NormalizationForm.FormC);
    private static string Nfd(string s) => UnicodeNormalizer.Normalize(s, NormalizationForm.FormD);
    private static string Nfkc(string s) => UnicodeNormalizer.Normalize(s, NormalizationForm.FormKC);
    private static string Nfkd(string s) => UnicodeNormalizer.Normalize(s, NormalizationForm.FormKD);

    [Fact]
    public void PassesTheConformanceTest()
    {
        var partOne = new HashSet<int>();
        int lines = 0, part = 0;
        var failures = new List<string>();
        foreach (var line in File.ReadLines(TestData.File("NormalizationTest.txt")))
        {
            if (line.StartsWith("@Part")) part = line[5] - '0';
            var data = line.Split('#')[0];
            if (data.Length == 0 || line.StartsWith('@')) continue;
            var c = data.Split(';').Take(5).Select(Decode).ToArray();
            if (part == 1) partOne.Add(char.ConvertToUtf32(c[0], 0));
            lines++;
            // The invariants the file's header states.
            bool ok = c.Take(3).All(x => Nfc(x) == c[1]) && c.Skip(3).All(x => Nfc(x) == c[3])
                && c.Take(3).All(x => Nfd(x) == c[2]) && c.Skip(3).All(x => Nfd(x) == c[4])
                && c.All(x => Nfkc(x) == c[3]) && c.All(x => Nfkd(x) == c[4]);
            if (!ok) failures.Add(line);
        }
        Assert.True(lines > 19000, $"only {lines} test lines read");
        Assert.True(failures.Count == 0, $"{failures.Count} of {lines} lines fail, e.g. {string.Join(" | ", failures.Take(5))}");

        // Every code point that part 1 does not list is its own normal form in all four forms.
        for (int cp = 0; cp <= 0x10FFFF; cp++)
        {
            if (cp is >= 0xD800 and <= 0xDFFF || partOne.Contains(cp)) continue;
            var x = char.ConvertFromUtf32(cp);
            if (Nfc(x) != x || Nfd(x) != x || Nfkc(x) != x || Nfkd(x) != x) failures.Add($"U+{cp:X4}");
        }
        Assert.True(failures.Count == 0, $"{failures.Count} code points not in part 1 change, e.g. {string.Join(", ", failures.Take(10))}");
    }

    [Fact]
    public void ALoneSurrogatePassesThrough() => Assert.Equal("a\uD800e\u0301", Nfd("a\uD800\u00E9"));
}
