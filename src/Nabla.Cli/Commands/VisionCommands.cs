using System.CommandLine;
using Nabla.Autograd;
using Nabla.Cli.Runs;
using Nabla.Cli.Ui;
using Nabla.Data;
using Nabla.NN;
using Nabla.Optim;
using Nabla.Training;
using Spectre.Console;

namespace Nabla.Cli.Commands;

/// <summary>`nabla train lenet|vgg|resnet|vit`: an image classifier on Fashion-MNIST (or MNIST), and its test-set
/// evaluation (also behind `nabla eval --run DIR`).</summary>
public static class VisionCommands
{
    private const int TestBatchSize = 500;

    public static IEnumerable<Command> TrainCommands() => VisionRunConfig.Architectures.Select(Train);

    private static Command Train(string architecture)
    {
        var defaults = VisionRunConfig.Defaults(architecture);
        var dataset = new Option<string>("--dataset") { Description = "fashion-mnist or mnist.", DefaultValueFactory = _ => defaults.Dataset };
        var epochs = new Option<int>("--epochs") { Description = "Passes over the training images.", DefaultValueFactory = _ => defaults.Epochs };
        var batchSize = new Option<int>("--batch-size") { Description = "Images per step.", DefaultValueFactory = _ => defaults.BatchSize };
        var lr = new Option<float>("--lr") { Description = "Peak learning rate (warm-up, then cosine decay to 0).", DefaultValueFactory = _ => defaults.LearningRate };
        var optimizer = new Option<string>("--optimizer") { Description = $"{Optimizers.Names} (sgd: momentum 0.9).", DefaultValueFactory = _ => defaults.Optimizer };
        var weightDecay = new Option<float>("--weight-decay") { Description = "Weight decay.", DefaultValueFactory = _ => defaults.WeightDecay };
        var augment = new Option<string>("--augment") { Description = "on: random shifts, flips (not for digits) and erasing of training images; off: none.", DefaultValueFactory = _ => "on" };
        var erasing = new Option<float>("--erasing") { Description = "With --augment on: probability of erasing a random rectangle of a Fashion-MNIST image.", DefaultValueFactory = _ => defaults.Erasing };
        var labelSmoothing = new Option<float>("--label-smoothing") { Description = "Share of each training target spread evenly over all classes (0: none).", DefaultValueFactory = _ => defaults.LabelSmoothing };
        var subset = new Option<int>("--subset") { Description = "Train on the first N training images only (0: all), for quick runs." };
        var width = new Option<int>("--width") { Description = $"resnet: channels of the first stage (default 16; stages double it). vit: token width (default {VisionRun.DefaultVitWidth}, a multiple of {VisionRun.VitHeads}; the MLP is twice as wide)." };
        var depth = new Option<int>("--depth") { Description = $"resnet: basic blocks per stage (default 3: ResNet-20; n gives ResNet-(6n+2)). vit: encoder blocks (default {VisionRun.DefaultVitDepth})." };
        var patch = new Option<int>("--patch") { Description = $"vit: side of the square image patches, a divisor of {VisionRun.ImageSide} (default {VisionRun.DefaultPatchSize}: 16 patches; 4: 49)." };
        var labelNoise = new Option<double>("--label-noise") { Description = "Replace this share of the training labels by a random wrong class (the test set stays clean)." };
        var seed = new Option<ulong>("--seed") { Description = "Seed for the initial weights, the shuffling and the augmentation.", DefaultValueFactory = _ => defaults.Seed };
        var run = new RunOptions(architecture);
        var quiet = new Option<bool>("--quiet") { Description = "Print only the final result." };
        var ranks = DistributedRun.RanksOption();
        dataset.Require(v => VisionRunConfig.Datasets.Contains(v), $"--dataset must be one of {string.Join(", ", VisionRunConfig.Datasets)}.");
        epochs.Positive(1_000_000);
        batchSize.Positive(1 << 24);
        lr.Positive(100);
        optimizer.Require(Optimizers.IsKnown, $"--optimizer must be one of {Optimizers.Names}.");
        weightDecay.NonNegative(100);
        augment.Require(v => v is "on" or "off", "--augment must be on or off.");
        erasing.Within(0, 1);
        labelSmoothing.Within(0, 1, maxExclusive: true);
        subset.NonNegative(int.MaxValue);
        width.NonNegative(4096);
        depth.NonNegative(1000);
        labelNoise.Within(0, 1);
        patch.Require(v => v == 0 || architecture == "vit", "--patch applies to the vit model only.");
        patch.Require(v => v == 0 || (v > 0 && VisionRun.ImageSide % v == 0), $"--patch must divide the image side {VisionRun.ImageSide} (1, 2, 4, 7, 14 or 28).");
        foreach (var size in new[] { width, depth })
            size.Require(v => v == 0 || architecture is "resnet" or "vit", $"{size.Name} applies to the resnet and vit models only.");
        width.Require(v => architecture != "vit" || v % VisionRun.VitHeads == 0, $"--width of a vit must be a multiple of its {VisionRun.VitHeads} attention heads.");

        var command = new Command(architecture, $"Train a {VisionRun.Describe(architecture)} image classifier on Fashion-MNIST (or MNIST).")
        {
            dataset, epochs, batchSize, lr, optimizer, weightDecay, augment, erasing, labelSmoothing, subset, width, depth, patch, labelNoise, seed, quiet, ranks,
        };
        run.AddTo(command, quiet, ranks);
        command.SetAction((p, cancel) => Task.FromResult(
            DistributedRun.Launch(p, ranks, run, (dir, resume, distributed) => Configure(p, new VisionRun(dir), resume, distributed, cancel))));
        return command;

        int Configure(ParseResult p, VisionRun runDir, bool resume, DistributedRun distributed, CancellationToken cancel)
        {
            string resumeCommand = CliErrors.CommandPath(p);
            var device = run.TrainingDevice(p, distributed);
            if (resume) return Resume(architecture, runDir.Directory, p.GetValue(quiet), distributed, device, resumeCommand, cancel);
            var config = defaults with
            {
                Dataset = p.GetValue(dataset)!,
                Epochs = p.GetValue(epochs),
                BatchSize = p.GetValue(batchSize),
                LearningRate = p.GetValue(lr),
                Optimizer = p.GetValue(optimizer)!.ToLowerInvariant(),
                WeightDecay = p.GetValue(weightDecay),
                Augment = p.GetValue(augment) == "on",
                Erasing = p.GetValue(erasing),
                LabelSmoothing = p.GetValue(labelSmoothing),
                Subset = p.GetValue(subset),
                Width = p.GetValue(width),
                Depth = p.GetValue(depth),
                PatchSize = p.GetValue(patch),
                LabelNoise = p.GetValue(labelNoise),
                Seed = p.GetValue(seed),
            };
            return TrainNew(config, runDir.Directory, p.GetValue(quiet), distributed, device, resumeCommand, cancel);
        }
    }

    /// <summary>Trains a new run of <paramref name="config"/> into <paramref name="runDir"/>; <paramref name="command"/>
    /// is the command line's path, for the message that says how to resume.</summary>
    internal static int TrainNew(VisionRunConfig config, string runDir, bool quiet, DistributedRun distributed, Device device, string command, CancellationToken cancel)
    {
        var run = new VisionRun(runDir);
        if (distributed.IsWriter) RunDirectory.RefuseExistingRun(runDir, run.ConfigPath);
        return TrainModel(config, run, resume: false, quiet, distributed, device, command, cancel);
    }

    /// <summary>Continues the run in <paramref name="runDir"/>, which `nabla train <paramref name="architecture"/>` started.</summary>
    internal static int Resume(string architecture, string runDir, bool quiet, DistributedRun distributed, Device device, string command, CancellationToken cancel)
    {
        var run = new VisionRun(runDir);
        var saved = VisionRunConfig.Load(run.ConfigPath);
        if (saved.Architecture != architecture)
            throw new CliException($"{runDir} is a {saved.Architecture} run; resume it with `nabla train {saved.Architecture} --out {runDir} --resume`.");
        return TrainModel(saved, run, resume: true, quiet, distributed, device, command, cancel);
    }

    private static int TrainModel(VisionRunConfig config, VisionRun run, bool resume, bool quiet, DistributedRun distributed, Device device, string command,
        CancellationToken cancel)
    {
        var dataset = VisionRun.Dataset(config);
        var trainData = dataset.Load(DatasetSplit.Train);
        var testData = dataset.Load(DatasetSplit.Test);
        int count = config.Subset > 0 ? Math.Min(config.Subset, trainData.Count) : trainData.Count;

        Generator.ManualSeed(config.Seed);
        var model = VisionRun.BuildModel(config, dataset.Classes.Count).To(device);
        var labels = trainData.Labels.Narrow(0, 0, count);
        if (config.LabelNoise > 0)
            labels = Tensor.FromArray(LabelNoise.Corrupt(labels.ToIntArray(), dataset.Classes.Count, config.LabelNoise, config.Seed + 2), count);
        using var train = new ImageLoader(trainData.Images.Narrow(0, 0, count), labels, config.BatchSize,
            shuffleSeed: config.Seed, augmentation: VisionRun.Augmentation(config), normalization: dataset.Statistics, augmentationSeed: config.Seed + 1);
        using var test = TestLoader(dataset, testData);
        int stepsPerEpoch = train.BatchesPerEpoch;
        var options = new TrainerOptions
        {
            Steps = config.Epochs * stepsPerEpoch, EvalEvery = stepsPerEpoch, EvalBatches = test.BatchesPerEpoch,
            CheckpointEvery = stepsPerEpoch, Seed = config.Seed,
        };
        var optimizer = Optimizers.Create(config.Optimizer, model, config.LearningRate, config.WeightDecay, config.Momentum);
        // Warm-up (a few hundred steps at most) keeps SGD at lr 0.1 and AdamW on the ViT from blowing up in the first steps.
        var schedule = new CosineWithWarmup(optimizer, warmupSteps: Math.Max(1, Math.Min(stepsPerEpoch, options.Steps / 20)), totalSteps: options.Steps);
        var trainer = new Trainer(model, (logits, labels) => F.CrossEntropy(logits, labels, labelSmoothing: model.Training ? config.LabelSmoothing : 0f),
            DeviceBatchSource.On(train, device), optimizer, options, schedule, DeviceBatchSource.On(test, device), run.Directory, distributed.Communicator);
        trainer.Metrics["accuracy"] = Evaluation.Accuracy;

        if (!resume && distributed.IsWriter) config.Save(run.ConfigPath);
        var resumed = trainer.TryResume();
        if (!quiet)
        {
            Console.WriteLine($"data: {dataset.Name} — {count:N0} training images{(config.Augment ? " (augmented)" : "")}" +
                $"{(config.LabelNoise > 0 ? $" with {100 * config.LabelNoise:0.#}% of their labels randomised" : "")}, {testData.Count:N0} test images, " +
                $"{dataset.Classes.Count} classes");
            Console.WriteLine($"model: {VisionRun.Describe(config)}, {model.ParameterCount:N0} parameters; {config.Optimizer} lr {config.LearningRate} " +
                $"weight decay {config.WeightDecay}, {config.Epochs} epochs of {stepsPerEpoch} steps{(device.IsCpu ? "" : $"; on {device}")}");
        }
        TrainingLoop.PrintResume(resumed, quiet, stepsPerEpoch);

        var progress = new TrainingProgress(options.Steps, "images");
        EpochReport.Attach(trainer, progress, stepsPerEpoch, config.Epochs, classification: true, "test", quiet);
        // eval reads the model of the last finished epoch.
        trainer.AfterCheckpoint += c => run.SaveModel(model, config, c.Step / stepsPerEpoch);
        if (TrainingLoop.Run(trainer, progress, command, cancel) != TrainingOutcome.Finished) return 130;
        if (!distributed.IsWriter) return 0;

        EpochReport.WriteCharts(run.Directory, EpochReport.History(trainer.MetricsPath!, stepsPerEpoch), classification: true, "test");
        ReportTest(model, test, dataset.Classes, run, device);
        if (!quiet) Console.WriteLine($"run saved to {run.Directory} (config.json, model.safetensors, checkpoints/, metrics.jsonl, loss.png, accuracy.png, confusion.png)");
        return 0;
    }

    /// <summary>The test split in its order, normalised like the training images and not augmented.</summary>
    private static ImageLoader TestLoader(IdxDataset dataset, ImageClassificationData test) =>
        new(test.Images, test.Labels, TestBatchSize, normalization: dataset.Statistics);

    /// <summary>`nabla eval --run DIR` for an image-classifier run: the model on its dataset's test set.</summary>
    public static int Evaluate(string directory, Device device)
    {
        var run = new VisionRun(directory);
        var (config, model) = run.Load();
        var dataset = VisionRun.Dataset(config);
        using var test = TestLoader(dataset, dataset.Load(DatasetSplit.Test));
        ReportTest(model.To(device), test, dataset.Classes, run, device);
        return 0;
    }

    /// <summary>Prints the test accuracy and a per-class table, and draws the confusion matrix into the run directory;
    /// <paramref name="split"/> names what was evaluated ("validation" when it is not the test set).</summary>
    internal static void ReportTest(Module model, ImageLoader test, IReadOnlyList<string> classes, VisionRun run, Device device, string split = "test")
    {
        var confusion = Confusion(model, test, classes.Count, device);
        int total = test.Count, correct = Enumerable.Range(0, classes.Count).Sum(c => confusion[c, c]);
        Console.WriteLine($"{split} accuracy: {100.0 * correct / total:F2}% ({correct:N0} of {total:N0} images)");
        var table = new Table().AddColumn("class").AddColumn(new TableColumn("accuracy").RightAligned()).AddColumn(new TableColumn("correct").RightAligned())
            .AddColumn("most often mistaken for");
        for (int c = 0; c < classes.Count; c++)
        {
            int images = Enumerable.Range(0, classes.Count).Sum(p => confusion[c, p]);
            int mistaken = Enumerable.Range(0, classes.Count).Where(p => p != c).MaxBy(p => confusion[c, p]);
            table.AddRow(Markup.Escape(classes[c]), images == 0 ? "-" : $"{100.0 * confusion[c, c] / images:F1}%", $"{confusion[c, c]}/{images}",
                confusion[c, mistaken] == 0 ? "" : Markup.Escape($"{classes[mistaken]} ({confusion[c, mistaken]})"));
        }
        // To whatever Console.Out is now (the shared AnsiConsole keeps the writer it started with).
        AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) }).Write(table);
        Charts.Confusion(run.ConfusionPath, $"Confusion matrix ({split} set)", confusion, classes);
        Console.WriteLine($"confusion matrix: {run.ConfusionPath}");
    }

    /// <summary>counts[true class, predicted class] over one pass of <paramref name="test"/>, the model on <paramref name="device"/>.</summary>
    private static int[,] Confusion(Module model, ImageLoader test, int classes, Device device)
    {
        model.Eval();
        using var _ = GradMode.NoGrad();
        var counts = new int[classes, classes];
        foreach (var (images, labels) in test.Epoch(0))
        {
            using var memory = MemoryScope.Begin();
            var predicted = model.Forward(images.To(device)).ArgMax(-1).ToIntArray();
            var truth = labels.ToIntArray();
            for (int i = 0; i < truth.Length; i++) counts[truth[i], predicted[i]]++;
        }
        return counts;
    }
}
