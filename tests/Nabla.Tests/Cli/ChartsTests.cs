using Nabla.Cli.Ui;
using SkiaSharp;

namespace Nabla.Tests.Cli;

public class ChartsTests
{
    /// <summary>Every cell of the confusion chart is drawn in the unit square around its label, in the colour of its share on
    /// a 0–1 scale: sampled near the four corners of each cell (away from the count written in its middle), the rendered
    /// PNG shows the colormap's colour of that cell's share. No share here exceeds one half, so a colour scale fitted to the
    /// data would paint the 50% cells yellow, and cells half a cell off their labels would show a neighbour's colour.</summary>
    [Fact]
    public void ConfusionCellsSitUnderTheirLabelsInTheColourOfTheirShare()
    {
        int[,] counts = { { 5, 5, 0 }, { 0, 5, 5 }, { 5, 0, 5 } };
        string[] classes = ["a", "b", "c"];
        var plot = Charts.ConfusionPlot("test", counts, classes);
        using var image = SKBitmap.Decode(plot.GetImageBytes(Charts.ConfusionWidth, Charts.ConfusionHeight, ScottPlot.ImageFormat.Png));
        var viridis = new ScottPlot.Colormaps.Viridis();
        for (int t = 0; t < 3; t++)
            for (int p = 0; p < 3; p++)
            {
                var expected = viridis.GetColor(counts[t, p] / 10.0);
                foreach (var (dx, dy) in new[] { (-0.4, -0.4), (-0.4, 0.4), (0.4, -0.4), (0.4, 0.4) })
                {
                    var pixel = plot.GetPixel(new ScottPlot.Coordinates(p + dx, 2 - t + dy));
                    var actual = image.GetPixel((int)pixel.X, (int)pixel.Y);
                    Assert.True(Math.Abs(actual.Red - expected.R) <= 8 && Math.Abs(actual.Green - expected.G) <= 8 && Math.Abs(actual.Blue - expected.B) <= 8,
                        $"cell (true {t}, predicted {p}) at offset ({dx}, {dy}): {actual}, expected {expected} (share {counts[t, p] / 10.0})");
                }
            }
    }
}
