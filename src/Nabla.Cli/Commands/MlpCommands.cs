using System.CommandLine;
using System.Globalization;
using System.Text;
using Nabla.Autograd;
using Nabla.Cli.Runs;
using Nabla.Cli.Ui;
using Nabla.Data;
using Nabla.IO;
using Nabla.NN;
using Nabla.Optim;
using Nabla.Training;
using Spectre.Console;

namespace Nabla.Cli.Commands;

/// <summary>`nabla train mlp`, `nabla eval` and `nabla predict`: a multi-layer perceptron on a CSV file.</summary>
public static class MlpCommands
{
    private static readonly Option<string> RunOption = new("--run") { Description = "Run directory written by `nabla train mlp`.", Required = true };
    private static readonly Option<string?> CsvInput = new("--csv") { Description = "CSV file with the same columns as the training data." };

    public static Command Train()
    {
        var defaults = new MlpRunConfig();
        var csv = new Option<string?>("--csv") { Description = "CSV file to train on (default: the built-in iris dataset)." };
        var target = new Option<string?>("--target") { Description = "Label column: a name, an index (0, -1) or 'last'. Default: species for the built-in data, else last." };
        var noHeader = new Option<bool>("--no-header") { Description = "The CSV has no header line (columns are named c0, c1, ...)." };
        var skipRows = new Option<int>("--skip-rows") { Description = "Lines to skip before the header (1 for scikit-learn's bundled CSV files)." };
        var task = new Option<TabularTask>("--task") { Description = "classification, regression or auto.", DefaultValueFactory = _ => TabularTask.Auto };
        var hidden = new Option<string>("--hidden") { Description = "Hidden layer sizes, comma-separated.", DefaultValueFactory = _ => string.Join(",", defaults.Hidden) };
        var activation = new Option<string>("--activation") { Description = "relu, leaky_relu, gelu, gelu_tanh, silu, tanh or sigmoid.", DefaultValueFactory = _ => defaults.Activation };
        var dropout = new Option<float>("--dropout") { Description = "Dropout probability after each hidden layer.", DefaultValueFactory = _ => defaults.Dropout };
        var epochs = new Option<int>("--epochs") { Description = "Passes over the training data.", DefaultValueFactory = _ => defaults.Epochs };
        var batchSize = new Option<int>("--batch-size") { Description = "Samples per step.", DefaultValueFactory = _ => defaults.BatchSize };
        var lr = new Option<float>("--lr") { Description = "Learning rate.", DefaultValueFactory = _ => defaults.LearningRate };
        var optimizer = new Option<string>("--optimizer") { Description = "adamw, adam, sgd, sgd-nesterov or rmsprop.", DefaultValueFactory = _ => defaults.Optimizer };
        var weightDecay = new Option<float>("--weight-decay") { Description = "Weight decay.", DefaultValueFactory = _ => defaults.WeightDecay };
        var valFraction = new Option<double>("--val-fraction") { Description = "Share of rows held out for validation.", DefaultValueFactory = _ => defaults.ValidationFraction };
        var seed = new Option<ulong>("--seed") { Description = "Seed for the split, the initial weights and the shuffling.", DefaultValueFactory = _ => defaults.Seed };
        var run = new RunOptions("mlp");
        var quiet = new Option<bool>("--quiet") { Description = "Print only the final result." };
        var ranks = DistributedRun.RanksOption();
        var imageDataset = new Option<string?>("--dataset") { Description = "Train on an image dataset's pixels instead of a CSV file: fashion-mnist or mnist (evaluated on its test set)." };
        var augment = new Option<string?>("--augment") { Description = "With --dataset: on (random shifts and flips) or off (the default)." };
        var subset = new Option<int>("--subset") { Description = "With --dataset: train on the first N training images only (0: all)." };
        var labelNoise = new Option<double>("--label-noise") { Description = "With --dataset: replace this share of the training labels by a random wrong class." };
        subset.NonNegative(int.MaxValue);
        labelNoise.Within(0, 1);
        imageDataset.Require(v => VisionRunConfig.Datasets.Contains(v), $"--dataset must be one of {string.Join(", ", VisionRunConfig.Datasets)}.");
        augment.Require(v => v is "on" or "off", "--augment must be on or off.");

        var command = new Command("mlp", "Train a multi-layer perceptron on a CSV file (classification or regression) or on images (--dataset).")
        {
            csv, target, noHeader, skipRows, task, hidden, activation, dropout, epochs, batchSize, lr, optimizer, weightDecay, valFraction, seed, quiet, ranks,
            imageDataset, augment, subset, labelNoise,
        };
        run.AddTo(command, quiet, ranks);
        skipRows.NonNegative(int.MaxValue);
        epochs.Positive(1_000_000);
        batchSize.Positive(1 << 24);
        lr.Positive(100);
        weightDecay.NonNegative(100);
        valFraction.Within(0, 1, minExclusive: true, maxExclusive: true);
        dropout.Within(0, 1, maxExclusive: true);

        command.SetAction((p, cancel) => Task.FromResult(
            DistributedRun.Launch(p, ranks, run, (dir, resume, distributed) =>
            {
                bool images = p.GetValue(imageDataset) != null || (resume && VisionRun.IsVisionRun(dir));
                if (!images)
                    foreach (var imageOnly in new Option[] { augment, subset, labelNoise })
                        if (p.GetResult(imageOnly) != null) throw new CliException($"{imageOnly.Name} applies to image datasets only (--dataset).");
                return images ? TrainOnImages(p, dir, resume, distributed, cancel) : Configure(p, new MlpRun(dir), resume, distributed, cancel);
            })));
        return command;

        // The vision trainer with an MLP over the 784 pixels: run directory, test-set evaluation and charts of `nabla train lenet`.
        int TrainOnImages(ParseResult p, string dir, bool resume, DistributedRun distributed, CancellationToken cancel)
        {
            foreach (var tabularOnly in new Option[] { csv, target, noHeader, skipRows, task, activation, valFraction })
                if (p.GetResult(tabularOnly) is { Implicit: false })
                    throw new CliException($"{tabularOnly.Name} does not apply to an MLP on images (--dataset).");
            var on = run.TrainingDevice(p, distributed);
            if (resume) return VisionCommands.Resume("mlp", dir, p.GetValue(quiet), distributed, on, CliErrors.CommandPath(p), cancel);
            var defaults = VisionRunConfig.Defaults("mlp");
            var config = defaults with
            {
                Dataset = p.GetValue(imageDataset)!,
                Hidden = p.GetResult(hidden) is { Implicit: false } ? ParseHidden(p.GetValue(hidden)!) : defaults.Hidden,
                Dropout = Given(dropout, defaults.Dropout),
                Epochs = Given(epochs, defaults.Epochs),
                BatchSize = Given(batchSize, defaults.BatchSize),
                LearningRate = Given(lr, defaults.LearningRate),
                Optimizer = p.GetValue(optimizer)!.ToLowerInvariant(),
                WeightDecay = Given(weightDecay, defaults.WeightDecay),
                Augment = p.GetValue(augment) == "on",
                Subset = p.GetValue(subset),
                LabelNoise = p.GetValue(labelNoise),
                Seed = Given(seed, defaults.Seed),
            };
            return VisionCommands.TrainNew(config, dir, p.GetValue(quiet), distributed, on, CliErrors.CommandPath(p), cancel);

            // The tabular defaults suit a few hundred rows; an option left out takes the image MLP's default instead.
            T Given<T>(Option<T> option, T imageDefault) => p.GetResult(option) is { Implicit: false } ? p.GetValue(option)! : imageDefault;
        }

        int Configure(ParseResult p, MlpRun runDir, bool resume, DistributedRun distributed, CancellationToken cancel)
        {
            var on = run.TrainingDevice(p, distributed);
            string resumeCommand = CliErrors.CommandPath(p);
            if (resume) return TrainMlp(MlpRunConfig.Load(runDir.ConfigPath), runDir, resume: true, p.GetValue(quiet), distributed, on, resumeCommand, cancel);
            var csvPath = p.GetValue(csv);
            var config = new MlpRunConfig
            {
                Csv = csvPath ?? MlpRunConfig.BuiltinIris,
                Target = p.GetValue(target) ?? (csvPath == null ? "species" : "last"),
                NoHeader = p.GetValue(noHeader),
                SkipRows = p.GetValue(skipRows),
                Task = p.GetValue(task),
                Hidden = ParseHidden(p.GetValue(hidden)!),
                Activation = p.GetValue(activation)!,
                Dropout = p.GetValue(dropout),
                Epochs = p.GetValue(epochs),
                BatchSize = p.GetValue(batchSize),
                LearningRate = p.GetValue(lr),
                Optimizer = p.GetValue(optimizer)!.ToLowerInvariant(),
                WeightDecay = p.GetValue(weightDecay),
                ValidationFraction = p.GetValue(valFraction),
                Seed = p.GetValue(seed),
            };
            if (distributed.IsWriter) RunDirectory.RefuseExistingRun(runDir.Directory, runDir.ConfigPath);
            return TrainMlp(config, runDir, resume: false, p.GetValue(quiet), distributed, on, resumeCommand, cancel);
        }
    }

    private static int[] ParseHidden(string text)
    {
        if (string.IsNullOrWhiteSpace(text)) return [];
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var sizes = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], out sizes[i]) || sizes[i] is <= 0 or > MlpRunConfig.MaxHiddenWidth)
                throw new CliException($"--hidden: '{parts[i]}' is not a layer size from 1 to {MlpRunConfig.MaxHiddenWidth} (expected e.g. 128,64).");
        return sizes;
    }

    private static int TrainMlp(MlpRunConfig config, MlpRun run, bool resume, bool quiet, DistributedRun distributed, Device device, string command, CancellationToken cancel)
    {
        var table = config.ReadTable();
        var (trainRows, valRows) = DataSplit.TrainValidation(table.Rows.Count, config.ValidationFraction, config.Seed);
        var prep = resume ? run.LoadPreprocessor() : TabularPreprocessor.Fit(table, config.Target, trainRows, config.Task);
        var (trainX, trainY) = prep.Transform(table, trainRows);
        var (valX, valY) = prep.Transform(table, valRows);
        if (trainY == null) throw new CliException($"{table.Source}: the target column '{prep.Target}' is missing.");
        bool classification = prep.Task == TabularTask.Classification;

        var model = MlpRun.BuildModel(config, prep, new Generator(config.Seed));
        model.To(device);
        var train = new TensorBatchSource(trainX, trainY, config.BatchSize, shuffleSeed: config.Seed);
        var validation = valRows.Count > 0 ? new TensorBatchSource(valX, valY!, EvalBatchSize) : null;
        int stepsPerEpoch = train.BatchesPerEpoch;
        var options = new TrainerOptions
        {
            Steps = config.Epochs * stepsPerEpoch, EvalEvery = stepsPerEpoch, EvalBatches = validation?.BatchesPerEpoch ?? 0,
            CheckpointEvery = stepsPerEpoch, Seed = config.Seed,
        };
        var optimizer = Optimizers.Create(config.Optimizer, model, config.LearningRate, config.WeightDecay, config.Momentum);
        var trainer = new Trainer(model, MlpRun.Loss(classification), DeviceBatchSource.On(train, device), optimizer, options,
            validation: validation == null ? null : DeviceBatchSource.On(validation, device), runDirectory: run.Directory, communicator: distributed.Communicator);
        foreach (var (name, metric) in MlpRun.Metrics(classification)) trainer.Metrics[name] = metric;

        if (!resume && distributed.IsWriter)
        {
            AtomicFile.WriteAllText(run.ConfigPath, config.ToJson());
            AtomicFile.WriteAllText(run.PreprocessorPath, prep.ToJson());
        }
        var resumed = trainer.TryResume();
        if (!quiet)
        {
            Console.WriteLine($"data: {config.Csv} — {trainRows.Count} training / {valRows.Count} validation rows, {prep.FeatureCount} features, " +
                (classification ? $"{prep.Classes.Count} classes ({string.Join(", ", prep.Classes)})" : "regression"));
            Console.WriteLine($"model: MLP {prep.FeatureCount} → {string.Join(" → ", config.Hidden)} → {prep.OutputCount}, {model.ParameterCount:N0} parameters; {config.Optimizer} lr {config.LearningRate}" +
                (device.IsCpu ? "" : $"; on {device}"));
        }
        TrainingLoop.PrintResume(resumed, quiet, stepsPerEpoch);

        var progress = new TrainingProgress(options.Steps);
        EpochReport.Attach(trainer, progress, stepsPerEpoch, config.Epochs, classification, "val", quiet);
        // eval and predict read the model of the last finished epoch.
        trainer.AfterCheckpoint += c =>
            model.Save(run.CheckpointPath, new Dictionary<string, string> { ["format"] = "nabla-mlp", ["epoch"] = (c.Step / stepsPerEpoch).ToString(CultureInfo.InvariantCulture) });
        if (TrainingLoop.Run(trainer, progress, command, cancel) != TrainingOutcome.Finished) return 130;
        if (!distributed.IsWriter) return 0;

        var history = EpochReport.History(trainer.MetricsPath!, stepsPerEpoch);
        EpochReport.WriteCharts(run.Directory, history, classification, "validation");
        var last = history[^1];
        if (classification) Console.WriteLine($"validation accuracy: {100 * last.ValidationAccuracy:F2}% ({valRows.Count} rows), loss {last.ValidationLoss:F4}");
        else Console.WriteLine($"validation rmse: {Math.Sqrt(last.ValidationLoss):F4} ({valRows.Count} rows)");
        if (!quiet) Console.WriteLine($"run saved to {run.Directory} (config.json, preprocessor.json, model.safetensors, checkpoints/, metrics.jsonl, loss.png{(classification ? ", accuracy.png" : "")})");
        return 0;
    }

    private const int EvalBatchSize = 4096;

    public static Command Eval()
    {
        var device = DeviceOption.Create();
        var command = new Command("eval", "Evaluate a trained run: an MLP on its validation split (or another CSV file), an image classifier on its test set.")
        {
            RunOption, CsvInput, device,
        };
        command.SetAction(p =>
        {
            var runDir = p.GetValue(RunOption)!;
            var on = DeviceOption.Resolve(p.GetValue(device)!);
            if (FinetuneRunConfig.IsFinetuneRun(runDir)) return FinetuneResNetCommand.Evaluate(runDir, on);
            if (VisionRun.IsVisionRun(runDir))
            {
                if (p.GetValue(CsvInput) != null) throw new CliException($"--csv: {runDir} is an image-classifier run; it is evaluated on its dataset's test set.");
                return VisionCommands.Evaluate(runDir, on);
            }
            var (config, prep, model) = new MlpRun(runDir).Load();
            model.To(on);
            var csvPath = p.GetValue(CsvInput);
            CsvTable table;
            IReadOnlyList<int> rows;
            if (csvPath == null)
            {
                table = config.ReadTable();
                rows = DataSplit.TrainValidation(table.Rows.Count, config.ValidationFraction, config.Seed).Validation;
            }
            else
            {
                table = CsvTable.Read(csvPath, config.CsvOptions);
                rows = Enumerable.Range(0, table.Rows.Count).ToList();
            }
            var (x, y) = prep.Transform(table, rows);
            if (y == null) throw new CliException($"{table.Source}: the target column '{prep.Target}' is missing, so there is nothing to evaluate against (use `nabla predict`).");
            bool classification = prep.Task == TabularTask.Classification;
            var rowsSource = new TensorBatchSource(x, y, EvalBatchSize);
            var result = Evaluation.Run(model, MlpRun.Loss(classification), DeviceBatchSource.On(rowsSource, on), rowsSource.BatchesPerEpoch, MlpRun.Metrics(classification));
            double loss = result.Loss, accuracy = result.Metrics.GetValueOrDefault("accuracy", double.NaN);
            string scope = csvPath == null ? "validation split" : csvPath;
            if (!classification)
            {
                Console.WriteLine($"{scope}: {rows.Count} rows, mse {loss:F4}, rmse {Math.Sqrt(loss):F4}");
                return 0;
            }
            Console.WriteLine($"{scope}: {rows.Count} rows, accuracy {100 * accuracy:F2}%, loss {loss:F4}");
            PrintConfusion(model, x.To(on), y, prep.Classes);
            return 0;
        });
        return command;
    }

    private static void PrintConfusion(Module model, Tensor x, Tensor y, List<string> classes)
    {
        model.Eval();
        using var _ = GradMode.NoGrad();
        var predicted = model.Forward(x).ArgMax(-1).ToIntArray();
        var truth = y.ToIntArray();
        var counts = new int[classes.Count, classes.Count];
        for (int i = 0; i < truth.Length; i++) counts[truth[i], predicted[i]]++;
        var table = new Table().Title("confusion (rows: true class, columns: predicted)");
        table.AddColumn("");
        foreach (var c in classes) table.AddColumn(Markup.Escape(c));
        for (int t = 0; t < classes.Count; t++)
            table.AddRow(new[] { Markup.Escape(classes[t]) }.Concat(Enumerable.Range(0, classes.Count).Select(p => counts[t, p].ToString())).ToArray());
        AnsiConsole.Write(table);
    }

    public static Command Predict()
    {
        var csv = new Option<string>("--csv") { Description = "CSV file of rows to predict (the target column may be absent).", Required = true };
        var outPath = new Option<string?>("--output") { Description = "Write predictions to this CSV file instead of standard output." };
        var command = new Command("predict", "Predict with a trained MLP run: one output line per input row.") { RunOption, csv, outPath };
        command.SetAction(p =>
        {
            var (config, prep, model) = new MlpRun(p.GetValue(RunOption)!).Load();
            var table = CsvTable.Read(p.GetValue(csv)!, config.CsvOptions);
            var (x, _) = prep.Transform(table);
            model.Eval();
            Tensor output;
            using (GradMode.NoGrad()) output = model.Forward(x);
            int nonFinite = Array.FindIndex(output.ToArray(), v => !float.IsFinite(v));
            if (nonFinite >= 0)
                throw new CliException($"{table.Source}:{table.LineNumbers[nonFinite / prep.OutputCount]}: the model's output overflows for this row (its values are far outside the training data).");
            var sb = new StringBuilder();
            var inv = CultureInfo.InvariantCulture;
            if (prep.Task == TabularTask.Classification)
            {
                var probs = output.Softmax(-1).ToArray();
                var best = output.ArgMax(-1).ToIntArray();
                sb.AppendLine("line,prediction," + string.Join(",", prep.Classes.Select(c => $"p({c})")));
                for (int i = 0; i < best.Length; i++)
                    sb.AppendLine($"{table.LineNumbers[i]},{prep.Classes[best[i]]}," +
                        string.Join(",", Enumerable.Range(0, prep.Classes.Count).Select(k => probs[i * prep.Classes.Count + k].ToString("F4", inv))));
            }
            else
            {
                var values = output.ToArray();
                sb.AppendLine($"line,{prep.Target}");
                for (int i = 0; i < values.Length; i++) sb.AppendLine($"{table.LineNumbers[i]},{values[i].ToString("G6", inv)}");
            }
            var target = p.GetValue(outPath);
            if (target == null) Console.Write(sb.ToString());
            else
            {
                AtomicFile.WriteAllText(target, sb.ToString());
                Console.Error.WriteLine($"wrote {table.Rows.Count} predictions to {target}");
            }
            return 0;
        });
        return command;
    }
}
