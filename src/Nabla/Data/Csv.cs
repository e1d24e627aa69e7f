using System.Text;

namespace Nabla.Data;

/// <summary>A malformed data file or row: the message names the file and line.</summary>
public sealed class DataFormatException(string message) : Exception(IO.ErrorText.OneLine(message));

/// <summary>How to read a CSV file.</summary>
public sealed record CsvOptions
{
    /// <summary>Whether the first (non-skipped) line holds column names. Without one, columns are named c0, c1, ...</summary>
    public bool HasHeader { get; init; } = true;
    /// <summary>Lines to skip before the header/data (e.g. 1 for scikit-learn's bundled files, whose first line is a count).</summary>
    public int SkipRows { get; init; }
    public char Delimiter { get; init; } = ',';
}

/// <summary>A CSV file read into memory as strings: RFC 4180 quoting ("a, b" and doubled quotes), blank
/// lines ignored, every row checked to have the header's field count.</summary>
public sealed class CsvTable
{
    public string Source { get; }
    public string[] Columns { get; }
    public List<string[]> Rows { get; } = new();
    /// <summary>1-based line number of each row in the file, for error messages.</summary>
    public List<int> LineNumbers { get; } = new();

    private CsvTable(string source, string[] columns)
    {
        Source = source;
        Columns = columns;
    }

    public int ColumnIndex(string nameOrIndex)
    {
        int i = Array.IndexOf(Columns, nameOrIndex);
        if (i >= 0) return i;
        if (int.TryParse(nameOrIndex, out int k) && k >= -Columns.Length && k < Columns.Length) return k < 0 ? k + Columns.Length : k;
        if (nameOrIndex == "last") return Columns.Length - 1;
        throw new DataFormatException($"{Source}: no column '{nameOrIndex}' (columns: {string.Join(", ", Columns)}; an index like 0 or -1 also works).");
    }

    /// <summary>Largest CSV file read: the table lives in memory as strings, several times the file's size.</summary>
    public const long MaxFileBytes = 512L << 20;

    public static CsvTable Read(string path, CsvOptions? options = null)
    {
        var text = IO.BoundedFile.ReadAllText(path, MaxFileBytes, "a CSV file");
        return Parse(new StringReader(text), path, options ?? new CsvOptions());
    }

    public static CsvTable Parse(TextReader reader, string source, CsvOptions options)
    {
        CsvTable? table = null;
        int lineNumber = 0, skipped = 0;
        while (ReadRecord(reader, options.Delimiter, ref lineNumber, source) is { } record)
        {
            var (fields, line) = record;
            if (skipped < options.SkipRows) { skipped++; continue; }
            if (fields.Length == 1 && fields[0].Length == 0) continue; // blank line
            if (table == null)
            {
                if (options.HasHeader)
                {
                    var names = fields.Select(f => f.Trim()).ToArray();
                    var duplicate = names.GroupBy(n => n).FirstOrDefault(g => g.Count() > 1);
                    if (duplicate != null) throw new DataFormatException($"{source}:{line}: column name '{duplicate.Key}' appears twice in the header.");
                    table = new CsvTable(source, names);
                    continue;
                }
                table = new CsvTable(source, Enumerable.Range(0, fields.Length).Select(i => $"c{i}").ToArray());
            }
            if (fields.Length != table.Columns.Length)
                throw new DataFormatException($"{source}:{line}: the row has {fields.Length} fields but the header has {table.Columns.Length}.");
            table.Rows.Add(fields);
            table.LineNumbers.Add(line);
        }
        return table ?? throw new DataFormatException($"{source}: the file is empty.");
    }

    /// <summary>Reads one record (which may span lines inside quotes); null at end of input.</summary>
    private static (string[] Fields, int Line)? ReadRecord(TextReader reader, char delimiter, ref int lineNumber, string source)
    {
        var first = reader.ReadLine();
        if (first == null) return null;
        int startLine = ++lineNumber;
        var fields = new List<string>();
        var field = new StringBuilder();
        string line = first;
        int i = 0;
        bool inQuotes = false;
        while (true)
        {
            if (i >= line.Length)
            {
                if (!inQuotes) break;
                var next = reader.ReadLine() ?? throw new DataFormatException($"{source}:{startLine}: a quoted field is never closed.");
                lineNumber++;
                field.Append('\n');
                line = next;
                i = 0;
                continue;
            }
            char c = line[i++];
            if (inQuotes)
            {
                if (c != '"') field.Append(c);
                else if (i < line.Length && line[i] == '"') { field.Append('"'); i++; }
                else inQuotes = false;
            }
            else if (c == '"' && field.Length == 0) inQuotes = true;
            else if (c == delimiter) { fields.Add(field.ToString()); field.Clear(); }
            else field.Append(c);
        }
        fields.Add(field.ToString());
        return (fields.ToArray(), startLine);
    }
}
