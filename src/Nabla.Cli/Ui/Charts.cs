using Nabla.IO;

namespace Nabla.Cli.Ui;

/// <summary>One line of a <see cref="Charts.Lines"/> chart.</summary>
public sealed record ChartSeries(string Name, double[] X, double[] Y, string? Group = null, bool Dashed = false);

/// <summary>PNG line charts of training curves (ScottPlot, headless).</summary>
public static class Charts
{
    /// <summary>Writes a chart of one or more series over <paramref name="x"/>; NaN points are left out.</summary>
    public static void Line(string path, string title, string xLabel, string yLabel, double[] x, params (string Name, double[] Y)[] series) =>
        Lines(path, title, xLabel, yLabel, series.Select(s => new ChartSeries(s.Name, x, s.Y)).ToArray());

    /// <summary>Writes a chart of series that each have their own x values (runs of different lengths); NaN points
    /// are left out. Series with the same <see cref="ChartSeries.Group"/> share a colour, a dashed one beside a solid one.</summary>
    public static void Lines(string path, string title, string xLabel, string yLabel, params ChartSeries[] series)
    {
        var plot = new ScottPlot.Plot();
        var groups = series.Select(s => s.Group ?? s.Name).Distinct().ToList();
        foreach (var s in series)
        {
            var points = s.X.Zip(s.Y).Where(p => double.IsFinite(p.Second)).ToArray();
            if (points.Length == 0) continue;
            var line = plot.Add.Scatter(points.Select(p => p.First).ToArray(), points.Select(p => p.Second).ToArray());
            line.LegendText = s.Name;
            line.MarkerSize = points.Length > 50 ? 0 : 4;
            if (s.Group != null) line.Color = plot.Add.Palette.GetColor(groups.IndexOf(s.Group));
            if (s.Dashed) line.LinePattern = ScottPlot.LinePattern.Dashed;
        }
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        plot.ShowLegend();
        SavePng(plot, path, 900, 540);
    }

    /// <summary>A chart whose x axis is a list of labels (the values of a sweep's knob), evenly spaced.</summary>
    public static void Categories(string path, string title, string xLabel, string yLabel, IReadOnlyList<string> labels, params (string Name, double[] Y)[] series)
    {
        var positions = Enumerable.Range(0, labels.Count).Select(i => (double)i).ToArray();
        var plot = new ScottPlot.Plot();
        foreach (var (name, y) in series)
        {
            var points = positions.Zip(y).Where(p => double.IsFinite(p.Second)).ToArray();
            if (points.Length == 0) continue;
            var line = plot.Add.Scatter(points.Select(p => p.First).ToArray(), points.Select(p => p.Second).ToArray());
            line.LegendText = name;
            line.MarkerSize = 6;
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(positions, labels.ToArray());
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        plot.ShowLegend();
        SavePng(plot, path, 900, 540);
    }

    /// <summary>A confusion matrix as a heat map (rows: true class, columns: predicted), each cell labelled with its count.</summary>
    public static void Confusion(string path, string title, int[,] counts, IReadOnlyList<string> classes) =>
        SavePng(ConfusionPlot(title, counts, classes), path, ConfusionWidth, ConfusionHeight);

    public const int ConfusionWidth = 760, ConfusionHeight = 720;

    /// <summary>The chart <see cref="Confusion"/> draws: cell (true t, predicted p) is the unit square centred at
    /// x = p, y = classes − 1 − t (row 0 at the top), coloured by the share of class t predicted as p on a fixed 0–1 scale.</summary>
    public static ScottPlot.Plot ConfusionPlot(string title, int[,] counts, IReadOnlyList<string> classes)
    {
        int n = classes.Count;
        var plot = new ScottPlot.Plot();
        // Shares of each true class, so that rare and common classes colour alike; the count is written on the cell.
        var shares = new double[n, n];
        for (int t = 0; t < n; t++)
        {
            double rowTotal = Math.Max(1, Enumerable.Range(0, n).Sum(p => counts[t, p]));
            for (int p = 0; p < n; p++) shares[t, p] = counts[t, p] / rowTotal;
        }
        var heatmap = plot.Add.Heatmap(shares);
        heatmap.Colormap = new ScottPlot.Colormaps.Viridis(); // dark (none) to yellow (all of the class)
        // A fixed scale: a colour means the same share in every run, and the text colour below, chosen from the share,
        // contrasts with the cell (on the data's own range a 73% cell of a weak model was drawn yellow under white text).
        heatmap.ManualRange = new ScottPlot.Range(0, 1);
        // The outer edges of the cells (Extent would place the outermost cell centres there: every cell half a cell off its label).
        heatmap.Rectangle = new ScottPlot.CoordinateRect(-0.5, n - 0.5, -0.5, n - 0.5);
        for (int t = 0; t < n; t++)
            for (int p = 0; p < n; p++)
            {
                var label = plot.Add.Text(counts[t, p].ToString(System.Globalization.CultureInfo.InvariantCulture), p, n - 1 - t);
                label.LabelAlignment = ScottPlot.Alignment.MiddleCenter;
                label.LabelFontColor = shares[t, p] > 0.6 ? ScottPlot.Colors.Black : ScottPlot.Colors.White;
            }
        var positions = Enumerable.Range(0, n).Select(i => (double)i).ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(positions, classes.ToArray());
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(positions, classes.Reverse().ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = -45;
        plot.Axes.Bottom.TickLabelStyle.Alignment = ScottPlot.Alignment.MiddleRight;
        plot.Axes.Bottom.MinimumSize = 110; // room for the slanted class names
        plot.Axes.SetLimits(-0.5, n - 0.5, -0.5, n - 0.5);
        plot.Title(title);
        plot.XLabel("predicted");
        plot.YLabel("true class");
        return plot;
    }

    /// <summary>Renders in memory and writes through <see cref="AtomicFile"/>, so a reader never sees half a chart.</summary>
    private static void SavePng(ScottPlot.Plot plot, string path, int width, int height)
    {
        var png = plot.GetImageBytes(width, height, ScottPlot.ImageFormat.Png);
        AtomicFile.Write(path, stream => stream.Write(png));
    }
}
