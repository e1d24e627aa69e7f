using System.CommandLine;
using System.Globalization;
using System.Text;
using Nabla.Cli.Runs;
using Nabla.Cli.Ui;
using Nabla.IO;
using Nabla.Training;
using Spectre.Console;

namespace Nabla.Cli.Commands;

/// <summary>A run's curves as `nabla compare` reads them: per validation (an epoch, for image and MLP runs), the mean
/// training loss and accuracy since the previous one and the validation's.</summary>
public sealed record RunHistory(string Name, string Directory, IReadOnlyList<EpochSummary> Epochs)
{
    public bool HasAccuracy => Epochs.Any(e => double.IsFinite(e.ValidationAccuracy));
    public EpochSummary Last => Epochs[^1];
    public EpochSummary Best => Epochs.MinBy(e => double.IsFinite(e.ValidationLoss) ? e.ValidationLoss : double.MaxValue)!;
}

/// <summary>`nabla compare RUN...`: overlays the loss and accuracy curves of training runs in one chart each and
/// prints a table of their final and best values (also written as compare.md).</summary>
public static class CompareCommand
{
    public static Command Create()
    {
        var runs = new Argument<string[]>("runs") { Description = "Run directories (each with a metrics.jsonl), e.g. the points of a `nabla sweep`.", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string?>("--out") { Description = "Directory for loss.png, accuracy.png and compare.md (default: runs/compare-<time>)." };
        var command = new Command("compare", "Overlay the training curves of several runs (loss, accuracy) and tabulate their results.") { runs, output };
        command.SetAction(p =>
        {
            var histories = p.GetValue(runs)!.Select(Load).ToList();
            var dir = RunDirectory.ForNewRun(p.GetValue(output), "compare");
            Write(dir, histories, "Runs compared");
            return 0;
        });
        return command;
    }

    /// <summary>Reads a run's metrics.jsonl; its epochs are its validations (the first one's step gives the interval).</summary>
    public static RunHistory Load(string directory)
    {
        var path = Path.Combine(directory, "metrics.jsonl");
        if (!File.Exists(path)) throw new CliException($"{directory}: no metrics.jsonl; not the directory of a training run.");
        List<System.Text.Json.Nodes.JsonObject> records;
        try { records = MetricsLog.Read(path); }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException) { throw new CliException($"{path}: unreadable ({e.Message})."); }
        var firstValidation = records.FirstOrDefault(r => r.ContainsKey("val_loss"))?["step"]?.GetValue<int>()
            ?? throw new CliException($"{path}: no validation was logged, so there is nothing to compare (is the run's validation split empty?).");
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory)));
        return new RunHistory(name, directory, EpochReport.History(path, Math.Max(1, firstValidation)));
    }

    /// <summary>loss.png, accuracy.png (when the runs classify) and compare.md into <paramref name="directory"/>, and the table on the console.</summary>
    public static void Write(string directory, IReadOnlyList<RunHistory> runs, string title)
    {
        Directory.CreateDirectory(directory);
        ChartSeries[] Curves(Func<EpochSummary, double> train, Func<EpochSummary, double> validation) => runs.SelectMany(r => new[]
        {
            new ChartSeries($"{r.Name} (validation)", r.Epochs.Select(e => (double)e.Epoch).ToArray(), r.Epochs.Select(validation).ToArray(), r.Name),
            new ChartSeries($"{r.Name} (train)", r.Epochs.Select(e => (double)e.Epoch).ToArray(), r.Epochs.Select(train).ToArray(), r.Name, Dashed: true),
        }).ToArray();
        var written = new List<string> { "loss.png" };
        Charts.Lines(Path.Combine(directory, "loss.png"), $"{title}: loss (dashed: train)", "epoch (validation)", "loss", Curves(e => e.TrainLoss, e => e.ValidationLoss));
        bool accuracy = runs.Any(r => r.HasAccuracy);
        if (accuracy)
        {
            Charts.Lines(Path.Combine(directory, "accuracy.png"), $"{title}: accuracy (dashed: train)", "epoch (validation)", "accuracy",
                Curves(e => e.TrainAccuracy, e => e.ValidationAccuracy));
            written.Add("accuracy.png");
        }

        string[] header = accuracy
            ? ["run", "epochs", "train loss", "val loss", "best val loss (epoch)", "train acc", "val acc"]
            : ["run", "epochs", "train loss", "val loss", "best val loss (epoch)"];
        var rows = runs.Select(r =>
        {
            var cells = new List<string> { r.Name, r.Last.Epoch.ToString(CultureInfo.InvariantCulture), F(r.Last.TrainLoss), F(r.Last.ValidationLoss),
                $"{F(r.Best.ValidationLoss)} ({r.Best.Epoch})" };
            if (accuracy) cells.AddRange([Percent(r.Last.TrainAccuracy), Percent(r.Last.ValidationAccuracy)]);
            return cells.ToArray();
        }).ToList();
        var table = new Table();
        foreach (var h in header) table.AddColumn(h == "run" ? new TableColumn(h) : new TableColumn(h).RightAligned());
        foreach (var row in rows) table.AddRow(row.Select(Markup.Escape).ToArray());
        AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) }).Write(table);

        var markdown = new StringBuilder($"# {title}\n\n| {string.Join(" | ", header)} |\n|{string.Concat(header.Select(_ => "---|"))}\n");
        foreach (var row in rows) markdown.Append($"| {string.Join(" | ", row)} |\n");
        markdown.Append($"\nRuns: {string.Join(", ", runs.Select(r => r.Directory))}\n");
        AtomicFile.WriteAllText(Path.Combine(directory, "compare.md"), markdown.ToString());
        written.Add("compare.md");
        Console.WriteLine($"{directory}: {string.Join(", ", written)}");
    }

    private static string F(double v) => double.IsFinite(v) ? v.ToString("F4", CultureInfo.InvariantCulture) : "-";
    private static string Percent(double v) => double.IsFinite(v) ? (100 * v).ToString("F2", CultureInfo.InvariantCulture) + "%" : "-";
}
