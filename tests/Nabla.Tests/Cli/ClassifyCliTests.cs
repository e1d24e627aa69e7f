using System.Net;
using System.Text.RegularExpressions;
using Nabla.IO;
using Nabla.Tests.IO;

namespace Nabla.Tests.Cli;

/// <summary>`nabla classify` on a real image file, and `nabla model fetch` for the published classifiers (no
/// internet here: a local server stands in for the hub, and the pinned SHA-256 refuses what it serves).</summary>
[Collection("Console")]
public class ClassifyCliTests : CliTest
{
    private static string Fixture(string name) => TestData.Fixture(Path.Combine("classify", name));

    [Theory]
    [InlineData("resnet")]
    [InlineData("vit")]
    public void PrintsTheTopFiveClassesWithProbabilities(string model)
    {
        var image = Fixture("image.png");
        var (exit, output, error) = CliRunner.Run("classify", "--model", Fixture(model), image, image);
        Assert.True(exit == 0, error);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(2 * 6, lines.Length); // per image: its path, then five ranked classes
        Assert.Equal(image, lines[0]);
        var ranked = lines.Skip(1).Take(5).Select(l => Regex.Match(l, @"^(\d)\.\s+(\d+\.\d\d)%  (.+)$")).ToArray();
        Assert.All(ranked, m => Assert.True(m.Success, "not a ranked class line"));
        Assert.Equal(["1", "2", "3", "4", "5"], ranked.Select(m => m.Groups[1].Value));
        var percents = ranked.Select(m => double.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(percents.OrderByDescending(p => p), percents);
        Assert.All(ranked, m => Assert.Contains(m.Groups[3].Value, Nabla.Models.Vision.ImageNet.Classes));
        Assert.Equal(lines.Skip(1).Take(5), lines.Skip(7).Take(5)); // the same image twice, the same answer
    }

    [Fact]
    public void UnfetchedModelsAndBadImagesAreOneLine()
    {
        var notFetched = CliRunner.Run("classify", "--model", "no-such-model", Fixture("image.png"));
        Assert.Equal(1, notFetched.Exit);
        Assert.Contains("resnet18, vit-tiny", notFetched.Err);
        Directory.CreateDirectory(TempDir);
        var text = Path.Combine(TempDir, "not-an-image.png");
        File.WriteAllText(text, "hello");
        var bad = CliRunner.Run("classify", "--model", Fixture("resnet"), text);
        Assert.Equal(1, bad.Exit);
        Assert.Contains(text, bad.Err);
        Assert.Single(bad.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Theory]
    [InlineData("resnet18")]
    [InlineData("vit-tiny")]
    public void FetchChecksThePinnedHash(string model)
    {
        // A mirror serving other bytes: the download is refused and nothing is left in the cache.
        using var server = new LocalHttpServer(LocalHttpServer.Files(name => name == "model.safetensors" ? File.ReadAllBytes(Fixture("resnet/model.safetensors")) : null));
        var cache = Path.Combine(TempDir, model);
        var (exit, _, error) = CliRunner.Run("model", "fetch", model, "--base-url", server.Url, "--cache", cache);
        Assert.Equal(1, exit);
        Assert.Contains("SHA-256 mismatch", error);
        Assert.False(File.Exists(Path.Combine(cache, "model.safetensors")));
        Assert.False(File.Exists(Path.Combine(cache, "config.json")));
    }
}
