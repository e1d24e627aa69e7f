namespace Nabla.Cli.Ui;

/// <summary>PNG line charts of training curves (ScottPlot, headless).</summary>
public static class Charts
{
    /// <summary>Writes a chart of one or more series over <paramref name="x"/>; NaN points are left out.</summary>
    public static void Line(string path, string title, string xLabel, string yLabel, double[] x, params (string Name, double[] Y)[] series)
    {
        var plot = new ScottPlot.Plot();
        foreach (var (name, y) in series)
        {
            var points = x.Zip(y).Where(p => double.IsFinite(p.Second)).ToArray();
            if (points.Length == 0) continue;
            var line = plot.Add.Scatter(points.Select(p => p.First).ToArray(), points.Select(p => p.Second).ToArray());
            line.LegendText = name;
            line.MarkerSize = points.Length > 50 ? 0 : 4;
        }
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        plot.ShowLegend();
        var tmp = path + ".tmp.png";
        plot.SavePng(tmp, 900, 540);
        File.Move(tmp, path, overwrite: true);
    }
}
