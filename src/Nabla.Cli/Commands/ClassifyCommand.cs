using System.CommandLine;
using Nabla.IO;
using Nabla.Models.Vision;

namespace Nabla.Cli.Commands;

/// <summary>`nabla classify --model M IMAGE...`: the top classes of each image under a pretrained classifier, with the
/// preprocessing its weights expect.</summary>
public static class ClassifyCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model")
        {
            Description = $"A fetched model ({string.Join(", ", PublishedClassifier.All.Select(m => m.Name))}: `nabla model fetch NAME` first) or a directory with model.safetensors and timm's config.json.",
            Required = true,
        };
        var top = new Option<int>("--top") { Description = "Classes to print per image.", DefaultValueFactory = _ => 5 };
        top.Positive(1000);
        var images = new Argument<string[]>("images") { Description = "Image files (PNG, JPEG, BMP, GIF, TIFF, WebP).", Arity = ArgumentArity.OneOrMore };
        var device = DeviceOption.Create();
        var command = new Command("classify", "Print the most likely classes of images under a pretrained classifier (ImageNet ResNet-18, ViT-Tiny, ...).") { model, top, device, images };
        command.SetAction(p =>
        {
            var on = DeviceOption.Resolve(p.GetValue(device)!);
            var classifier = PretrainedClassifier.Load(Resolve(p.GetValue(model)!));
            classifier.Model.To(on);
            int k = Math.Min(p.GetValue(top), classifier.Classes.Count);
            foreach (var path in p.GetValue(images)!)
            {
                var probabilities = classifier.Probabilities(classifier.Preprocessing.Load(path).Unsqueeze(0).To(on)).ToArray();
                Console.WriteLine(path);
                var best = Enumerable.Range(0, probabilities.Length).OrderByDescending(i => probabilities[i]).Take(k);
                foreach (var (index, rank) in best.Select((i, r) => (i, r + 1)))
                    Console.WriteLine($"  {rank}. {100 * probabilities[index],6:F2}%  {classifier.Classes[index]}");
            }
            return 0;
        });
        return command;
    }

    /// <summary>A directory as given, or a published model's name → its folder in the cache.</summary>
    private static string Resolve(string model)
    {
        if (Directory.Exists(model)) return model;
        if (PublishedClassifier.Find(model) is { } published)
        {
            var cached = CacheDirectory(published.Name);
            if (File.Exists(Path.Combine(cached, PretrainedClassifier.WeightsFile))) return cached;
            throw new CliException($"--model {model}: not downloaded yet (looked in {cached}); run `nabla model fetch {model}` on a machine with internet.");
        }
        throw new CliException($"--model {model}: no such directory, and not a model nabla can fetch ({string.Join(", ", PublishedClassifier.All.Select(m => m.Name))}).");
    }

    public static string CacheDirectory(string name) => Path.Combine(Downloader.CacheRoot, "models", name);
}
