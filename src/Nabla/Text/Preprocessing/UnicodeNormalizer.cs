using System.IO.Compression;
using System.Text;

namespace Nabla.Text.Preprocessing;

/// <summary>
/// Unicode normalisation (UAX #15: NFC, NFD, NFKC, NFKD) from the Unicode Character Database 15.0 facts in
/// UnicodeData/normalization.txt.gz. The engine builds with InvariantGlobalization (no ICU), under which .NET's own
/// <see cref="string.Normalize()"/> leaves non-ASCII text as it is; this does the work itself: decompose (recursively,
/// compatibility mappings too for the K forms, Hangul arithmetically), put combining marks in canonical order, and for
/// the C forms compose canonically again. Checked against the Unicode Consortium's NormalizationTest.txt.
/// A lone surrogate is passed through unchanged.
/// </summary>
public static class UnicodeNormalizer
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private sealed class Tables
    {
        public readonly Dictionary<int, int[]> Canonical = new();
        public readonly Dictionary<int, int[]> Compatibility = new();
        public readonly Dictionary<int, byte> CombiningClass = new();
        public readonly Dictionary<long, int> Composition = new();
        /// <summary>Code points that a canonical (or compatibility) normalisation may change or reorder, or that may
        /// join a preceding character: text with none of them is already normalised (Hangul is checked apart).</summary>
        public readonly HashSet<int> CanonicalActive = new(), CompatibilityActive = new();
    }

    private static readonly Lazy<Tables> Data = new(Load);

    private static Tables Load()
    {
        var tables = new Tables();
        var excluded = new HashSet<int>();
        using var resource = typeof(UnicodeNormalizer).Assembly.GetManifestResourceStream("Nabla.Text.Preprocessing.normalization.txt.gz")
            ?? throw new InvalidOperationException("Nabla.dll lacks its embedded Unicode normalisation table.");
        using var reader = new StreamReader(new GZipStream(resource, CompressionMode.Decompress), Encoding.ASCII);
        while (reader.ReadLine() is { Length: > 0 } line)
        {
            var fields = line.Split(' ');
            int cp = Convert.ToInt32(fields[1], 16);
            switch (fields[0])
            {
                case "C": tables.CombiningClass[cp] = byte.Parse(fields[2]); break;
                case "X": excluded.Add(cp); break;
                case "D":
                    var mapping = fields[3..].Select(f => Convert.ToInt32(f, 16)).ToArray();
                    tables.Compatibility[cp] = mapping;
                    if (fields[2] == "c") tables.Canonical[cp] = mapping;
                    break;
            }
        }
        // The primary composites: canonical pairs whose composite is not excluded from composition.
        foreach (var (cp, mapping) in tables.Canonical)
            if (mapping.Length == 2 && !excluded.Contains(cp))
            {
                tables.Composition[Pair(mapping[0], mapping[1])] = cp;
                tables.CanonicalActive.Add(mapping[1]);
            }
        tables.CanonicalActive.UnionWith(tables.Canonical.Keys);
        tables.CanonicalActive.UnionWith(tables.CombiningClass.Keys);
        tables.CompatibilityActive.UnionWith(tables.CanonicalActive);
        tables.CompatibilityActive.UnionWith(tables.Compatibility.Keys);
        return tables;
    }

    private static long Pair(int first, int second) => ((long)first << 21) | (uint)second;

    /// <summary><paramref name="text"/> in normalisation form <paramref name="form"/>.</summary>
    public static string Normalize(string text, NormalizationForm form)
    {
        // ASCII is the same in every form.
        if (!text.AsSpan().ContainsAnyExceptInRange('\0', '\u007F')) return text;
        bool compatibility = form is NormalizationForm.FormKC or NormalizationForm.FormKD;
        bool compose = form is NormalizationForm.FormC or NormalizationForm.FormKC;
        var tables = Data.Value;
        if (IsStable(text, compatibility ? tables.CompatibilityActive : tables.CanonicalActive)) return text;
        var points = new List<int>(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            int cp = text[i];
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) cp = char.ConvertToUtf32(text[i], text[++i]);
            Decompose(cp, compatibility ? tables.Compatibility : tables.Canonical, points);
        }
        SortCombiningMarks(points, tables);
        if (compose) Compose(points, tables);
        var result = new StringBuilder(points.Count);
        foreach (int cp in points)
            if (cp is >= 0xD800 and <= 0xDFFF) result.Append((char)cp);
            else result.Append(char.ConvertFromUtf32(cp));
        return result.ToString();
    }

    private static bool IsStable(string text, HashSet<int> active)
    {
        for (int i = 0; i < text.Length; i++)
        {
            int cp = text[i];
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) cp = char.ConvertToUtf32(text[i], text[++i]);
            // Hangul syllables and conjoining jamo (U+1100–U+11FF) decompose or compose arithmetically.
            if (cp is >= LBase and < 0x1200 or >= SBase and < SBase + SCount || active.Contains(cp)) return false;
        }
        return true;
    }

    private static void Decompose(int cp, Dictionary<int, int[]> mappings, List<int> output)
    {
        int s = cp - SBase;
        if (s is >= 0 and < SCount)
        {
            output.Add(LBase + s / NCount);
            output.Add(VBase + s % NCount / TCount);
            if (s % TCount != 0) output.Add(TBase + s % TCount);
        }
        else if (mappings.TryGetValue(cp, out var mapping))
            foreach (int part in mapping) Decompose(part, mappings, output);
        else output.Add(cp);
    }

    private static int CombiningClass(int cp, Tables tables) => tables.CombiningClass.TryGetValue(cp, out byte c) ? c : 0;

    /// <summary>The canonical ordering algorithm: within each run of non-starters, a stable sort by combining class.</summary>
    private static void SortCombiningMarks(List<int> points, Tables tables)
    {
        for (int i = 1; i < points.Count; i++)
        {
            int cp = points[i], ccc = CombiningClass(cp, tables);
            if (ccc == 0) continue;
            int j = i;
            while (j > 0 && CombiningClass(points[j - 1], tables) > ccc)
            {
                points[j] = points[j - 1];
                j--;
            }
            points[j] = cp;
        }
    }

    /// <summary>The canonical composition algorithm: each character joins the last starter when no character between
    /// them blocks it (one of the same or a higher combining class, or any starter).</summary>
    private static void Compose(List<int> points, Tables tables)
    {
        if (points.Count == 0) return;
        int starterIndex = 0;
        int lastClass = CombiningClass(points[0], tables) == 0 ? 0 : 256; // a leading non-starter blocks everything after it
        int kept = 1;
        for (int i = 1; i < points.Count; i++)
        {
            int cp = points[i], ccc = CombiningClass(cp, tables);
            if ((lastClass < ccc || lastClass == 0) && Composite(points[starterIndex], cp, tables) is int composite)
            {
                points[starterIndex] = composite;
                continue;
            }
            if (ccc == 0) starterIndex = kept;
            lastClass = ccc;
            points[kept++] = cp;
        }
        points.RemoveRange(kept, points.Count - kept);
    }

    private static int? Composite(int first, int second, Tables tables)
    {
        int l = first - LBase, v = second - VBase;
        if (l is >= 0 and < LCount && v is >= 0 and < VCount) return SBase + (l * VCount + v) * TCount;
        int s = first - SBase, t = second - TBase;
        if (s is >= 0 and < SCount && s % TCount == 0 && t is > 0 and < TCount) return first + t;
        return tables.Composition.TryGetValue(Pair(first, second), out int cp) ? cp : null;
    }
}
