using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Nabla.Data;

public enum TabularTask
{
    /// <summary>Classification when the target is text or has few distinct integer values, else regression.</summary>
    Auto,
    Classification,
    Regression,
}

/// <summary>How one input column becomes model features.</summary>
public sealed class ColumnEncoding
{
    public string Name { get; set; } = "";
    /// <summary>"numeric" (standardised) or "categorical" (one-hot).</summary>
    public string Kind { get; set; } = "numeric";
    /// <summary>Numeric: mean and standard deviation of the training split (population, as scikit-learn's StandardScaler).</summary>
    public double Mean { get; set; }
    public double Std { get; set; } = 1;
    /// <summary>Categorical: the categories seen in the training split, in one-hot order.</summary>
    public List<string> Categories { get; set; } = new();

    [JsonIgnore] public int Width => Kind == "numeric" ? 1 : Categories.Count;
}

/// <summary>
/// Turns CSV rows into model inputs: numeric columns standardised, categorical columns one-hot encoded, the
/// target mapped to class indices (or kept as a number for regression). Everything is fitted on the
/// training split only, saved with the model (JSON), and applied unchanged to validation and new data.
/// </summary>
public sealed class TabularPreprocessor
{
    public string Target { get; set; } = "";
    public TabularTask Task { get; set; }
    public List<ColumnEncoding> Columns { get; set; } = new();
    /// <summary>Classification: class names in index order.</summary>
    public List<string> Classes { get; set; } = new();

    [JsonIgnore] public int FeatureCount => Columns.Sum(c => c.Width);
    [JsonIgnore] public int OutputCount => Task == TabularTask.Classification ? Classes.Count : 1;

    /// <summary>Names of the model's input features ("age", "color=red", ...).</summary>
    [JsonIgnore]
    public IEnumerable<string> FeatureNames => Columns.SelectMany(c => c.Kind == "numeric" ? [c.Name] : c.Categories.Select(v => $"{c.Name}={v}"));

    private const int MaxClassesForAuto = 20;

    /// <summary>A number as a CSV cell writes it. NaN, Infinity and values beyond double's range parse in .NET
    /// but would poison the standardisation (and every prediction) silently, so they are an error naming the cell.</summary>
    private static bool TryParseNumber(CsvTable table, int row, int column, out double value)
    {
        var raw = table.Rows[row][column].Trim();
        if (!double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out value)) return false;
        if (!double.IsFinite(value))
            throw new DataFormatException($"{table.Source}:{table.LineNumbers[row]}: column '{table.Columns[column]}' (column {column + 1}) holds '{raw}', " +
                "which is not a finite number; fill in a value or remove the row.");
        return true;
    }

    /// <summary>Learns encodings from the training rows of <paramref name="table"/>.</summary>
    public static TabularPreprocessor Fit(CsvTable table, string target, IReadOnlyList<int> trainRows, TabularTask task = TabularTask.Auto)
    {
        int t = table.ColumnIndex(target);
        if (trainRows.Count == 0) throw new DataFormatException($"{table.Source}: no training rows.");
        var prep = new TabularPreprocessor { Target = table.Columns[t] };
        for (int c = 0; c < table.Columns.Length; c++)
        {
            if (c == t) continue;
            prep.Columns.Add(FitColumn(table, c, trainRows));
        }
        var targetValues = trainRows.Select(r => table.Rows[r][t].Trim()).ToList();
        int missing = trainRows.FirstOrDefault(r => table.Rows[r][t].Trim().Length == 0, -1);
        if (missing >= 0) throw new DataFormatException($"{table.Source}:{table.LineNumbers[missing]}: the target column '{prep.Target}' is empty.");
        var targetNumbers = trainRows.Select(r => TryParseNumber(table, r, t, out var d) ? d : (double?)null).ToList();
        bool numeric = targetNumbers.All(d => d.HasValue);
        if (task == TabularTask.Auto)
        {
            bool integral = numeric && targetNumbers.All(d => d!.Value == Math.Floor(d.Value));
            task = !numeric || (integral && targetValues.Distinct().Count() <= MaxClassesForAuto) ? TabularTask.Classification : TabularTask.Regression;
        }
        if (task == TabularTask.Regression && !numeric)
            throw new DataFormatException($"{table.Source}: the target column '{prep.Target}' has non-numeric values, so it cannot be a regression target.");
        prep.Task = task;
        if (task == TabularTask.Classification)
        {
            var distinct = targetValues.Distinct().ToList();
            // Numeric labels sort by value (so "10" follows "9"), text labels alphabetically.
            prep.Classes = numeric
                ? distinct.OrderBy(v => double.Parse(v, CultureInfo.InvariantCulture)).ToList()
                : distinct.OrderBy(v => v, StringComparer.Ordinal).ToList();
            if (prep.Classes.Count < 2) throw new DataFormatException($"{table.Source}: the target column '{prep.Target}' has only one class ('{prep.Classes[0]}') in the training split.");
        }
        return prep;
    }

    private static ColumnEncoding FitColumn(CsvTable table, int c, IReadOnlyList<int> rows)
    {
        var name = table.Columns[c];
        var values = rows.Select(r => table.Rows[r][c].Trim()).ToList();
        var presentRows = rows.Where(r => table.Rows[r][c].Trim().Length > 0).ToList();
        var present = presentRows.Select(r => table.Rows[r][c].Trim()).ToList();
        var parsed = presentRows.Select(r => TryParseNumber(table, r, c, out var d) ? d : (double?)null).ToList();
        int numericCount = parsed.Count(d => d.HasValue);
        if (present.Count > 0 && numericCount == present.Count)
        {
            var xs = parsed.Select(d => d!.Value).ToList();
            double mean = xs.Average();
            double std = Math.Sqrt(xs.Sum(x => (x - mean) * (x - mean)) / xs.Count);
            if (!double.IsFinite(mean) || !double.IsFinite(std))
                throw new DataFormatException($"{table.Source}: column '{name}' (column {c + 1}) has values too large to standardise (mean {mean}, standard deviation {std}).");
            return new ColumnEncoding { Name = name, Kind = "numeric", Mean = mean, Std = std > 0 ? std : 1 };
        }
        if (numericCount >= 0.9 * present.Count && present.Count >= 10)
        {
            // Mostly numbers with a few words is far more likely a corrupt row than a categorical column.
            int bad = presentRows[parsed.FindIndex(d => !d.HasValue)];
            throw new DataFormatException($"{table.Source}:{table.LineNumbers[bad]}: column '{name}' is numeric in {numericCount} of {present.Count} rows but this row has '{table.Rows[bad][c]}'.");
        }
        var categories = values.Select(v => v.Length == 0 ? "<missing>" : v).Distinct().OrderBy(v => v, StringComparer.Ordinal).ToList();
        return new ColumnEncoding { Name = name, Kind = "categorical", Categories = categories };
    }

    /// <summary>Encodes rows into features (N, FeatureCount) and, when the table has the target column, labels:
    /// Int32 class indices (N) for classification, Float32 (N, 1) for regression.</summary>
    public (Tensor Features, Tensor? Labels) Transform(CsvTable table, IReadOnlyList<int>? rows = null)
    {
        rows ??= Enumerable.Range(0, table.Rows.Count).ToList();
        var index = Columns.Select(col =>
        {
            int i = Array.IndexOf(table.Columns, col.Name);
            if (i < 0) throw new DataFormatException($"{table.Source}: the column '{col.Name}' the model was trained with is missing.");
            return i;
        }).ToArray();
        int targetIndex = Array.IndexOf(table.Columns, Target);
        var x = new float[rows.Count * FeatureCount];
        var classLabels = new int[rows.Count];
        var regressionLabels = new float[rows.Count];
        for (int n = 0; n < rows.Count; n++)
        {
            int r = rows[n];
            var row = table.Rows[r];
            int line = table.LineNumbers[rows[n]], f = n * FeatureCount;
            for (int c = 0; c < Columns.Count; c++)
            {
                var col = Columns[c];
                var raw = row[index[c]].Trim();
                if (col.Kind == "numeric")
                {
                    double v;
                    if (raw.Length == 0) v = col.Mean; // a missing number takes the training mean (0 after standardising)
                    else if (!TryParseNumber(table, r, index[c], out v))
                        throw new DataFormatException($"{table.Source}:{line}: column '{col.Name}' (column {index[c] + 1}) should be a number but is '{raw}'.");
                    float feature = (float)((v - col.Mean) / col.Std);
                    if (!float.IsFinite(feature))
                        throw new DataFormatException($"{table.Source}:{line}: column '{col.Name}' (column {index[c] + 1}) holds {raw}, far outside the training data's range (mean {col.Mean:G4}, standard deviation {col.Std:G4}).");
                    x[f++] = feature;
                }
                else
                {
                    int k = col.Categories.IndexOf(raw.Length == 0 ? "<missing>" : raw);
                    if (k >= 0) x[f + k] = 1; // unseen categories encode as all zeros
                    f += col.Width;
                }
            }
            if (targetIndex < 0) continue;
            var label = row[targetIndex].Trim();
            if (Task == TabularTask.Classification)
            {
                int k = Classes.IndexOf(label);
                if (k < 0) throw new DataFormatException($"{table.Source}:{line}: class '{label}' of column '{Target}' was not in the training data (classes: {string.Join(", ", Classes)}).");
                classLabels[n] = k;
            }
            else if (TryParseNumber(table, r, targetIndex, out var y) && float.IsFinite((float)y)) regressionLabels[n] = (float)y;
            else throw new DataFormatException($"{table.Source}:{line}: target '{Target}' should be a finite number but is '{label}'.");
        }
        var features = Tensor.FromArray(x, rows.Count, FeatureCount);
        if (targetIndex < 0) return (features, null);
        return (features, Task == TabularTask.Classification ? Tensor.FromArray(classLabels, rows.Count) : Tensor.FromArray(regressionLabels, rows.Count, 1));
    }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Converters = { new JsonStringEnumConverter() } };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads a preprocessor saved by <see cref="ToJson"/>, checking every field it will compute with.</summary>
    public static TabularPreprocessor FromJson(string json, string source)
    {
        TabularPreprocessor prep;
        try
        {
            prep = JsonSerializer.Deserialize<TabularPreprocessor>(json, Json) ?? throw new DataFormatException($"{source}: empty preprocessor file.");
        }
        catch (JsonException e)
        {
            throw new DataFormatException($"{source}: corrupt preprocessor ({IO.ErrorText.Json(e)}).");
        }
        prep.Validate(source);
        return prep;
    }

    /// <summary>Loads preprocessor.json from <paramref name="path"/>.</summary>
    public static TabularPreprocessor Load(string path) =>
        FromJson(IO.BoundedFile.ReadAllText(path, IO.BoundedFile.SmallFileLimit, "a preprocessor (preprocessor.json)"), path);

    private void Validate(string source)
    {
        string Problem(string what) => $"{source}: {what}; the file is corrupt.";
        if (string.IsNullOrEmpty(Target)) throw new DataFormatException(Problem("no \"Target\" column"));
        if (!Enum.IsDefined(Task) || Task == TabularTask.Auto) throw new DataFormatException(Problem($"\"Task\" is {Task}, expected Classification or Regression"));
        if (Columns is null) throw new DataFormatException(Problem("no \"Columns\""));
        if (Classes is null) throw new DataFormatException(Problem("no \"Classes\""));
        if (Task == TabularTask.Classification && (Classes.Count < 2 || Classes.Any(c => c is null)))
            throw new DataFormatException(Problem($"a classifier needs at least two named classes, found {Classes.Count}"));
        foreach (var (col, i) in Columns.Select((c, i) => (c, i)))
        {
            if (col is null || string.IsNullOrEmpty(col.Name)) throw new DataFormatException(Problem($"column {i} has no name"));
            if (col.Kind == "numeric")
            {
                if (!double.IsFinite(col.Mean) || !double.IsFinite(col.Std) || col.Std <= 0)
                    throw new DataFormatException(Problem($"column '{col.Name}' has mean {col.Mean} and standard deviation {col.Std} (both must be finite, the deviation positive)"));
            }
            else if (col.Kind != "categorical" || col.Categories is null || col.Categories.Any(c => c is null))
                throw new DataFormatException(Problem($"column '{col.Name}' is neither numeric nor categorical with a list of categories"));
        }
        if (FeatureCount == 0) throw new DataFormatException(Problem("no input features"));
    }
}

/// <summary>A seeded random split of row indices into training and validation sets.</summary>
public static class DataSplit
{
    public static (List<int> Train, List<int> Validation) TrainValidation(int count, double validationFraction, ulong seed)
    {
        if (validationFraction is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(validationFraction), "The validation fraction must be in [0, 1).");
        var order = Enumerable.Range(0, count).ToArray();
        new Generator(seed).Shuffle(order.AsSpan());
        int val = (int)Math.Round(count * validationFraction);
        return (order[val..].ToList(), order[..val].ToList());
    }
}
