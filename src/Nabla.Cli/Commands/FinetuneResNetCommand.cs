using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Nabla.Cli.Runs;
using Nabla.Cli.Ui;
using Nabla.Data;
using Nabla.IO;
using Nabla.Models.Vision;
using Nabla.NN;
using Nabla.Optim;
using Nabla.Training;

namespace Nabla.Cli.Commands;

/// <summary>What a `nabla finetune resnet` run was made with; saved as config.json in its run directory.</summary>
public sealed record FinetuneRunConfig
{
    /// <summary>The pretrained body: a `nabla train resnet` run directory, a fetched model's name or a classifier directory.</summary>
    public string Base { get; init; } = "";
    /// <summary>digits, or an image folder.</summary>
    public string Dataset { get; init; } = "digits";
    /// <summary>Training images per class (0: all of the training split).</summary>
    public int ExamplesPerClass { get; init; }
    public bool UnfreezeLastStage { get; init; }
    /// <summary>Full fine-tuning: every layer trained, starting from the pretrained weights.</summary>
    public bool UnfreezeAll { get; init; }
    /// <summary>The baseline: the same network with fresh random weights, all of it trained.</summary>
    public bool FromScratch { get; init; }
    /// <summary>Side the images are resized to before the body (default: the size it was trained on).</summary>
    public int ImageSize { get; init; }
    public int Epochs { get; init; } = 30;
    /// <summary>Epochs between evaluations (the last epoch is always evaluated).</summary>
    public int EvalEvery { get; init; } = 1;
    public int BatchSize { get; init; } = 32;
    public float LearningRate { get; init; } = 1e-2f;
    public float WeightDecay { get; init; } = 1e-4f;
    /// <summary>Peak learning rate of the trained pretrained layers (discriminative learning rates); null: <see cref="LearningRate"/>.</summary>
    public float? BodyLearningRate { get; init; }
    /// <summary>Re-estimate the body's batch-norm statistics on the training images before training (AdaBN).</summary>
    public bool AdaptBatchNorm { get; init; }
    /// <summary>Full-batch steps fitting the head alone on the frozen body's features before fine-tuning (LP-FT); 0: none.</summary>
    public int ProbeSteps { get; init; }
    /// <summary>Random shifts of the training images by up to this many of their pixels (0: no augmentation).</summary>
    public int Shift { get; init; }
    /// <summary>Evaluate on the training split's images not trained on instead of the test set (choosing a recipe
    /// without looking at the test set).</summary>
    public bool Validate { get; init; }
    public ulong Seed { get; init; } = 1;

    /// <summary>What is wrong with a configuration read back (the options' ranges), or null.</summary>
    public string? Problem()
    {
        if (string.IsNullOrEmpty(Base) || string.IsNullOrEmpty(Dataset)) return "\"Base\" or \"Dataset\" is missing";
        if (ExamplesPerClass is < 0 or > 1_000_000 || ImageSize is < 0 or > 4096 || Epochs is < 1 or > 1_000_000 || EvalEvery is < 1 or > 1_000_000 || BatchSize is < 1 or > 1 << 20)
            return $"examples per class {ExamplesPerClass}, image size {ImageSize}, epochs {Epochs} or batch size {BatchSize} is out of range";
        if (!(LearningRate is > 0 and <= 100) || !(WeightDecay is >= 0 and <= 100) || BodyLearningRate is { } body && !(body is > 0 and <= 100))
            return $"learning rate {LearningRate}, body learning rate {BodyLearningRate} or weight decay {WeightDecay} is out of range";
        if (ProbeSteps is < 0 or > 1_000_000 || Shift is < 0 or > 64) return $"probe steps {ProbeSteps} or shift {Shift} is out of range";
        if (FromScratch && (UnfreezeLastStage || UnfreezeAll)) return "--from-scratch and an --unfreeze option are both set";
        if (FromScratch && (BodyLearningRate != null || AdaptBatchNorm || ProbeSteps > 0))
            return "--body-lr, --adapt-batch-norm and --probe-steps act on pretrained weights, which --from-scratch has not";
        return BodyLearningRate != null && !UnfreezeLastStage && !UnfreezeAll ? "--body-lr needs a trained body: --unfreeze-last-stage or --unfreeze-all" : null;
    }

    public static FinetuneRunConfig Load(string path) => RunConfigFile.Read<FinetuneRunConfig>(path, c => c.Problem());

    /// <summary>Whether <paramref name="directory"/> holds a `nabla finetune resnet` run (its config names a base).</summary>
    public static bool IsFinetuneRun(string directory)
    {
        var path = Path.Combine(directory, "config.json");
        if (!File.Exists(path)) return false;
        try { return System.Text.Json.Nodes.JsonNode.Parse(BoundedFile.ReadAllText(path, BoundedFile.SmallFileLimit, "a run configuration")) is System.Text.Json.Nodes.JsonObject o && o.ContainsKey(nameof(Base)) && o.ContainsKey(nameof(ExamplesPerClass)); }
        catch (Exception e) when (e is JsonException or InputFileException) { return false; }
    }
}

/// <summary>
/// `nabla finetune resnet --base RUN_OR_MODEL --dataset digits|DIR`: adapts a pretrained ResNet to a new small
/// dataset by training only new layers — an input adapter (resize to the body's input size, 1×1 convolution to its
/// channels) and a new head — around the frozen body (<see cref="FineTunedClassifier"/>); `--unfreeze-last-stage`
/// trains the last stage too, `--from-scratch` trains the same network from random weights for comparison.
/// Held-out images (every 5th of each class) are the test set; the run directory is a vision run's.
/// </summary>
public static class FinetuneResNetCommand
{
    /// <summary>Every n-th image of each class is held out as the test set (20%).</summary>
    private const int HoldOutEvery = 5;

    public static Command Create()
    {
        var defaults = new FinetuneRunConfig();
        var baseModel = new Option<string>("--base")
        {
            Description = "The pretrained ResNet: a `nabla train resnet` run directory, resnet18 (after `nabla model fetch resnet18`) or a directory with model.safetensors and timm's config.json.",
        };
        var dataset = new Option<string>("--dataset") { Description = "digits (scikit-learn's 8×8 digits), a digits.csv(.gz) file, or an image folder (one sub-folder per class).", DefaultValueFactory = _ => defaults.Dataset };
        var examples = new Option<int>("--examples-per-class") { Description = "Training images per class (0: all of the training split)." };
        var unfreeze = new Option<bool>("--unfreeze-last-stage") { Description = "Train the body's last stage too (its batch norm included)." };
        var unfreezeAll = new Option<bool>("--unfreeze-all") { Description = "Train every layer, starting from the pretrained weights (full fine-tuning)." };
        var scratch = new Option<bool>("--from-scratch") { Description = "Baseline: the same network from random weights, every layer trained." };
        var imageSize = new Option<int>("--image-size") { Description = "Side the images are resized to for the body (default: its training size; smaller is faster for an ImageNet body)." };
        var epochs = new Option<int>("--epochs") { Description = "Passes over the training images.", DefaultValueFactory = _ => defaults.Epochs };
        var evalEvery = new Option<int>("--eval-every") { Description = "Evaluate every N epochs (and after the last): evaluating a few hundred images can cost more than an epoch on ten per class.", DefaultValueFactory = _ => defaults.EvalEvery };
        var batchSize = new Option<int>("--batch-size") { Description = "Images per step.", DefaultValueFactory = _ => defaults.BatchSize };
        var lr = new Option<float>("--lr") { Description = "Peak learning rate of AdamW (warm-up, then cosine decay).", DefaultValueFactory = _ => defaults.LearningRate };
        var weightDecay = new Option<float>("--weight-decay") { Description = "AdamW's weight decay.", DefaultValueFactory = _ => defaults.WeightDecay };
        var bodyLr = new Option<float?>("--body-lr") { Description = "Peak learning rate of the pretrained layers that are trained (with --unfreeze-last-stage or --unfreeze-all), usually below --lr: discriminative learning rates (default: --lr)." };
        var adaptBatchNorm = new Option<bool>("--adapt-batch-norm") { Description = "Re-estimate the body's batch-norm statistics on the training images before training (AdaBN): the body's own statistics describe its old data." };
        var probeSteps = new Option<int>("--probe-steps") { Description = "First fit the head alone on the frozen body's features for this many full-batch steps, then fine-tune (LP-FT)." };
        var shift = new Option<int>("--shift") { Description = "Augmentation: shift each training image by up to this many of its pixels at random (0: none)." };
        var validate = new Option<bool>("--validate") { Description = "Evaluate on the training split's images left out by --examples-per-class instead of the test set, to choose a recipe without the test set." };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the new layers' weights and the shuffling.", DefaultValueFactory = _ => defaults.Seed };
        var run = new RunOptions("finetune-resnet");
        var quiet = new Option<bool>("--quiet") { Description = "Print only the final result." };
        examples.NonNegative(1_000_000);
        imageSize.NonNegative(4096);
        epochs.Positive(1_000_000);
        evalEvery.Positive(1_000_000);
        batchSize.Positive(1 << 20);
        lr.Positive(100);
        bodyLr.Positive(100);
        weightDecay.NonNegative(100);
        probeSteps.NonNegative(1_000_000);
        shift.NonNegative(64);
        var command = new Command("resnet", "Fine-tune a pretrained ResNet on a small image dataset: a new input adapter and head around the frozen body.")
        {
            baseModel, dataset, examples, unfreeze, unfreezeAll, scratch, imageSize, epochs, evalEvery, batchSize, lr, bodyLr, weightDecay, adaptBatchNorm, probeSteps, shift, validate, seed, quiet,
        };
        run.AddTo(command, quiet);
        command.SetAction((p, cancel) =>
        {
            var (dir, resume) = run.RunDirectory(p);
            var runDir = new VisionRun(dir);
            string resumeCommand = CliErrors.CommandPath(p);
            var device = run.TrainingDevice(p);
            if (resume)
            {
                if (File.Exists(runDir.ConfigPath) && !FinetuneRunConfig.IsFinetuneRun(dir))
                    throw new CliException($"{dir} holds another kind of run than `nabla finetune resnet`; resume it with the command that made it.");
                return Task.FromResult(Run(FinetuneRunConfig.Load(runDir.ConfigPath), runDir, resume: true, p.GetValue(quiet), device, resumeCommand, cancel));
            }
            var config = defaults with
            {
                Base = p.GetValue(baseModel) ?? throw new CliException("--base is required: the pretrained ResNet to fine-tune."), Dataset = p.GetValue(dataset)!, ExamplesPerClass = p.GetValue(examples),
                UnfreezeLastStage = p.GetValue(unfreeze), UnfreezeAll = p.GetValue(unfreezeAll), FromScratch = p.GetValue(scratch), ImageSize = p.GetValue(imageSize),
                Epochs = p.GetValue(epochs), EvalEvery = p.GetValue(evalEvery), BatchSize = p.GetValue(batchSize), LearningRate = p.GetValue(lr),
                WeightDecay = p.GetValue(weightDecay), BodyLearningRate = p.GetValue(bodyLr), AdaptBatchNorm = p.GetValue(adaptBatchNorm),
                ProbeSteps = p.GetValue(probeSteps), Shift = p.GetValue(shift), Validate = p.GetValue(validate), Seed = p.GetValue(seed),
            };
            if ((config.FromScratch || config.UnfreezeAll) && config.UnfreezeLastStage)
                throw new CliException($"{(config.FromScratch ? "--from-scratch" : "--unfreeze-all")} trains every layer already; drop --unfreeze-last-stage.");
            if (config.FromScratch && config.UnfreezeAll) throw new CliException("--from-scratch and --unfreeze-all exclude each other: random or pretrained weights.");
            if (config.Problem() is { } problem) throw new CliException($"{problem}.");
            if (config.Validate && config.ExamplesPerClass == 0) throw new CliException("--validate evaluates on the training images --examples-per-class leaves out; set --examples-per-class.");
            RunDirectory.RefuseExistingRun(dir, runDir.ConfigPath);
            return Task.FromResult(Run(config, runDir, resume: false, p.GetValue(quiet), device, resumeCommand, cancel));
        });
        return command;
    }

    /// <summary>A pretrained ResNet, the normalisation its training images had and the size they were.</summary>
    private sealed record Body(ResNet Model, Normalization Normalization, int ImageSize, string Description, Func<ResNet> Fresh);

    private static Body LoadBody(string source)
    {
        if (Directory.Exists(source) && VisionRun.IsVisionRun(source))
        {
            var (config, model) = new VisionRun(source).Load();
            if (model is not ResNet resnet) throw new CliException($"--base {source}: a {config.Architecture} run; `finetune resnet` needs a `nabla train resnet` run.");
            var statistics = VisionRun.Dataset(config).Statistics;
            return new Body(resnet, statistics, 28, $"{VisionRun.Describe(config)} trained on {config.Dataset} ({source})",
                () => (ResNet)VisionRun.BuildModel(config, resnet.FeatureCount));
        }
        var directory = Directory.Exists(source) ? source
            : PublishedClassifier.Find(source) is { } published ? ClassifyCommand.CacheDirectory(published.Name)
            : throw new CliException($"--base {source}: no such run or model directory, and not a model nabla can fetch ({string.Join(", ", PublishedClassifier.All.Select(m => m.Name))}).");
        if (!File.Exists(Path.Combine(directory, PretrainedClassifier.WeightsFile)))
            throw new CliException($"--base {source}: {directory} holds neither a `nabla train resnet` run nor a fetched model (`nabla model fetch {source}`).");
        var classifier = PretrainedClassifier.Load(directory);
        if (classifier.Model is not ResNet body) throw new CliException($"--base {source}: a {classifier.Architecture}; `finetune resnet` needs a ResNet.");
        return new Body(body, classifier.Preprocessing.Normalization, classifier.Preprocessing.Crop, $"{classifier.Architecture} ({source})",
            () => new ResNet(body.Block, body.Layers.ToArray(), body.FeatureCount, body.InChannels, body.Width, body.ImageNetStem));
    }

    /// <summary>The dataset's training and test images (N, C, H, W) in [0, 1].</summary>
    private static (ImageClassificationData Train, ImageClassificationData Test) LoadData(FinetuneRunConfig config, int imageSize, int channels)
    {
        var all = config.Dataset == "digits" ? Digits.Load()
            : Directory.Exists(config.Dataset) ? ImageFolder.Load(config.Dataset, imageSize, channels)
            : File.Exists(config.Dataset) ? Digits.Load(config.Dataset)
            : throw new CliException($"--dataset {config.Dataset}: not digits, an image folder or a digits.csv(.gz) file.");
        var (train, test) = all.HoldOut(HoldOutEvery);
        if (config.ExamplesPerClass == 0) return (train, test);
        return (train.FirstPerClass(config.ExamplesPerClass), config.Validate ? train.AfterFirstPerClass(config.ExamplesPerClass) : test);
    }

    /// <summary>`nabla eval --run DIR` for a fine-tuning run: its model on its held-out images. The base must still be
    /// where the run found it: it defines the body's architecture (the weights are the run's).</summary>
    public static int Evaluate(string directory, Device device)
    {
        var run = new VisionRun(directory);
        var config = FinetuneRunConfig.Load(run.ConfigPath);
        if (!File.Exists(run.ModelPath)) throw new CliException($"{run.ModelPath}: not found; the run has not finished an epoch.");
        var body = LoadBody(config.Base);
        int imageSize = config.ImageSize > 0 ? config.ImageSize : body.ImageSize;
        var (train, test) = LoadData(config, imageSize, body.Model.InChannels);
        var model = new FineTunedClassifier(body.Model, train.Images.Size(1), imageSize, train.Classes.Count, body.Normalization);
        model.Load(run.ModelPath);
        using var testLoader = new ImageLoader(test.Images, test.Labels, 500);
        VisionCommands.ReportTest(model.To(device), testLoader, train.Classes, run, device, config.Validate ? "validation" : "test");
        return 0;
    }

    /// <param name="resume">Continue the run: the checkpoint holds the whole model (the frozen body and the batch-norm
    /// statistics of a trained stage included), so the base gives the body's architecture only.</param>
    private static int Run(FinetuneRunConfig config, VisionRun run, bool resume, bool quiet, Device device, string command, CancellationToken cancel)
    {
        var body = LoadBody(config.Base);
        int imageSize = config.ImageSize > 0 ? config.ImageSize : body.ImageSize;
        var (train, test) = LoadData(config, imageSize, body.Model.InChannels);
        Generator.ManualSeed(config.Seed);
        var model = new FineTunedClassifier(config.FromScratch ? body.Fresh() : body.Model, train.Images.Size(1), imageSize, train.Classes.Count, body.Normalization);
        if (config.FromScratch || config.UnfreezeAll) model.RequiresGrad_(true).Train();
        else if (config.UnfreezeLastStage) model.UnfreezeLastStage();
        var clock = Stopwatch.StartNew();
        // A resumed run's checkpoint holds the adapted statistics and the probed head already.
        if (config.AdaptBatchNorm && !resume) model.RecomputeBatchNormStatistics(train.Images);
        if (config.ProbeSteps > 0 && !resume) model.FitHead(train.Images, train.Labels, config.ProbeSteps, config.LearningRate, config.WeightDecay);
        // Re-estimation and probing read the host images, so they run before the model moves to its device.
        model.To(device);

        // The images come in [0, 1]: the adapter normalises them for the body.
        var augmentation = config.Shift > 0 ? new ImageAugmentation { CropPadding = config.Shift } : null;
        using var trainLoader = new ImageLoader(train.Images, train.Labels, Math.Min(config.BatchSize, train.Count), shuffleSeed: config.Seed, augmentation: augmentation);
        using var testLoader = new ImageLoader(test.Images, test.Labels, 500);
        int stepsPerEpoch = trainLoader.BatchesPerEpoch;
        var options = new TrainerOptions
        {
            Steps = config.Epochs * stepsPerEpoch, EvalEvery = config.EvalEvery * stepsPerEpoch, EvalBatches = testLoader.BatchesPerEpoch,
            CheckpointEvery = stepsPerEpoch, Seed = config.Seed,
        };
        var optimizer = new AdamW(model.ParameterGroups(config.BodyLearningRate), config.LearningRate, weightDecay: config.WeightDecay);
        var schedule = new CosineWithWarmup(optimizer, warmupSteps: Math.Max(1, options.Steps / 20), totalSteps: options.Steps);
        var trainer = new Trainer(model, (logits, labels) => F.CrossEntropy(logits, labels), DeviceBatchSource.On(trainLoader, device), optimizer, options, schedule,
            DeviceBatchSource.On(testLoader, device), run.Directory);
        trainer.Metrics["accuracy"] = Evaluation.Accuracy;
        if (!resume) RunConfigFile.WriteNew(run.Directory, run.ConfigPath, config);
        var resumed = trainer.TryResume();
        if (!quiet)
        {
            Console.WriteLine($"data: {config.Dataset} — {train.Count:N0} training images ({(config.ExamplesPerClass > 0 ? $"{config.ExamplesPerClass} per class" : "all")}), " +
                $"{test.Count:N0} {(config.Validate ? "validation images (training images not trained on)" : "test images")}, {train.Classes.Count} classes, resized to {imageSize}×{imageSize}");
            Console.WriteLine($"model: {(config.FromScratch ? "from scratch, the same network as" : "fine-tuning")} {body.Description}; " +
                $"{model.TrainableParameterCount:N0} of {model.ParameterCount:N0} parameters trained; AdamW lr {config.LearningRate}" +
                $"{(config.BodyLearningRate is { } bodyRate ? $" (pretrained layers {bodyRate})" : "")}, {config.Epochs} epochs of {stepsPerEpoch} steps" +
                $"{(config.AdaptBatchNorm ? "; batch norm re-estimated on the training images" : "")}{(config.ProbeSteps > 0 ? $"; head probed for {config.ProbeSteps} steps first" : "")}" +
                $"{(config.Shift > 0 ? $"; shifts of up to {config.Shift} px" : "")}" +
                (device.IsCpu ? "" : $"; on {device}"));
        }
        TrainingLoop.PrintResume(resumed, quiet, stepsPerEpoch);
        var progress = new TrainingProgress(options.Steps, "images");
        EpochReport.Attach(trainer, progress, stepsPerEpoch, config.Epochs, classification: true, config.Validate ? "val" : "test", quiet);
        trainer.AfterCheckpoint += _ => model.Save(run.ModelPath, new Dictionary<string, string> { ["format"] = "nabla-finetune", ["config"] = JsonSerializer.Serialize(config) });
        if (TrainingLoop.Run(trainer, progress, command, cancel) != TrainingOutcome.Finished) return 130;
        EpochReport.WriteCharts(run.Directory, EpochReport.History(trainer.MetricsPath!, stepsPerEpoch), classification: true, config.Validate ? "val" : "test");
        VisionCommands.ReportTest(model, testLoader, train.Classes, run, device, config.Validate ? "validation" : "test");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"trained in {clock.Elapsed.TotalSeconds:F0} s"));
        if (!quiet) Console.WriteLine($"run saved to {run.Directory} (config.json, model.safetensors, metrics.jsonl, loss.png, accuracy.png, confusion.png)");
        return 0;
    }
}
