using Nabla.IO;

namespace Nabla.Text.Preprocessing;

/// <summary>A part of speech as WordNet divides words.</summary>
public enum WordNetPos { Noun, Verb, Adjective, Adverb }

/// <summary>
/// English lemmatiser: WordNet's morphy, as NLTK's <c>WordNetLemmatizer</c> runs it, over the WordNet 3.0 database
/// files (Debian's <c>wordnet-base</c> installs them in /usr/share/wordnet).
/// <list type="number">
/// <item>A word in the part of speech's exception list (noun.exc, verb.exc, adj.exc, adv.exc: irregular forms such as
/// geese → goose, went → go, better → good) has the listed base forms (and itself) as candidates.</item>
/// <item>Otherwise the detachment rules (nouns: -s, -ses → -s, -ves → -f, -xes → -x, -zes → -z, -ches → -ch, -shes → -sh,
/// -men → -man, -ies → -y; verbs: -s, -ies → -y, -es → -e, -es, -ed → -e, -ed, -ing → -e, -ing; adjectives: -er, -est,
/// -er → -e, -est → -e; adverbs: none) are applied to the word, and the word itself and every result are candidates;
/// while none of them is a WordNet lemma of that part of speech the rules are applied again to the results.</item>
/// <item>Of the candidates that are lemmas, the shortest (the first of equal length) is the lemma; a word with none
/// is returned unchanged.</item>
/// </list>
/// It covers what WordNet covers: nouns, verbs, adjectives and adverbs in lower case (WordNet's ~147,000 lemmas, multi-word
/// lemmas joined by '_'); it does not tag parts of speech (the caller says which one), and a word outside WordNet
/// (names, most function words) comes back unchanged. The -ves → -f rule is NLTK's addition to WordNet's own list.
/// </summary>
public sealed class WordNetLemmatizer
{
    /// <summary>Where Debian's wordnet-base puts the database.</summary>
    public const string DebianDirectory = "/usr/share/wordnet";

    private static readonly string[] FileSuffix = ["noun", "verb", "adj", "adv"];

    private static readonly (string Suffix, string Replacement)[][] Rules =
    [
        [("s", ""), ("ses", "s"), ("ves", "f"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"), ("ies", "y")],
        [("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")],
        [("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
        [],
    ];

    private readonly HashSet<string>[] lemmas;
    private readonly Dictionary<string, string[]>[] exceptions;

    private WordNetLemmatizer(HashSet<string>[] lemmas, Dictionary<string, string[]>[] exceptions)
    {
        this.lemmas = lemmas;
        this.exceptions = exceptions;
    }

    /// <summary>Reads index.{noun,verb,adj,adv} (the lemmas) and {noun,verb,adj,adv}.exc (the irregular forms) from
    /// <paramref name="directory"/>, a WordNet database folder.</summary>
    public static WordNetLemmatizer Load(string directory = DebianDirectory)
    {
        if (!Directory.Exists(directory))
            throw new InputFileException($"{directory}: no WordNet database folder here (on Debian: apt-get install wordnet-base).");
        var lemmas = new HashSet<string>[4];
        var exceptions = new Dictionary<string, string[]>[4];
        for (int pos = 0; pos < 4; pos++)
        {
            lemmas[pos] = new HashSet<string>(StringComparer.Ordinal);
            foreach (var line in ReadLines(directory, "index." + FileSuffix[pos]))
                // Lines that start with a space are the licence header; a lemma line starts with the lemma.
                if (line.Length > 0 && line[0] != ' ') lemmas[pos].Add(line[..Math.Max(0, line.IndexOf(' '))]);
            exceptions[pos] = new Dictionary<string, string[]>(StringComparer.Ordinal);
            foreach (var line in ReadLines(directory, FileSuffix[pos] + ".exc"))
            {
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length >= 2) exceptions[pos][fields[0]] = fields[1..];
            }
        }
        return new WordNetLemmatizer(lemmas, exceptions);
    }

    private static string[] ReadLines(string directory, string name)
    {
        var path = Path.Combine(directory, name);
        if (!File.Exists(path)) throw new InputFileException($"{path}: missing from the WordNet database folder.");
        return BoundedFile.ReadAllText(path, BoundedFile.SmallFileLimit, "a WordNet database file").Split('\n');
    }

    /// <summary>Whether <paramref name="word"/> is a WordNet lemma of part of speech <paramref name="pos"/>.</summary>
    public bool IsLemma(string word, WordNetPos pos) => lemmas[(int)pos].Contains(word);

    /// <summary>The lemma of <paramref name="word"/> (lower case) as part of speech <paramref name="pos"/>; the word itself when WordNet has none.</summary>
    public string Lemmatize(string word, WordNetPos pos = WordNetPos.Noun)
    {
        ArgumentNullException.ThrowIfNull(word);
        var known = lemmas[(int)pos];
        if (exceptions[(int)pos].TryGetValue(word, out var bases))
            return Shortest(new[] { word }.Concat(bases).Where(known.Contains)) ?? word;

        var forms = Detach([word], pos);
        var found = Shortest(new[] { word }.Concat(forms).Where(known.Contains));
        while (found == null && forms.Count > 0)
        {
            forms = Detach(forms, pos);
            found = Shortest(forms.Where(known.Contains));
        }
        return found ?? word;
    }

    private static List<string> Detach(IEnumerable<string> forms, WordNetPos pos) =>
        forms.SelectMany(form => Rules[(int)pos].Where(r => form.EndsWith(r.Suffix, StringComparison.Ordinal))
            .Select(r => form[..^r.Suffix.Length] + r.Replacement)).ToList();

    /// <summary>The shortest string, the first among equals; null for none.</summary>
    private static string? Shortest(IEnumerable<string> candidates)
    {
        string? best = null;
        foreach (var c in candidates) if (best == null || c.Length < best.Length) best = c;
        return best;
    }
}
