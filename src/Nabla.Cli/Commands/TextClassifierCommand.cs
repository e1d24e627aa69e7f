using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Nabla.Cli.Runs;
using Nabla.Cli.Ui;
using Nabla.Data;
using Nabla.IO;
using Nabla.Models.Text;
using Nabla.Optim;
using Nabla.Text.Preprocessing;
using Nabla.Training;
using Spectre.Console;

namespace Nabla.Cli.Commands;

/// <summary>Everything that defines a text-classifier run; saved as config.json and in model.safetensors' metadata.</summary>
public sealed record TextClassifierConfig
{
    public string Csv { get; init; } = "";
    /// <summary>SHA-256 of the CSV when the run started, so a resume on a changed file is refused.</summary>
    public string CsvSha256 { get; init; } = "";
    public string TextColumn { get; init; } = "text";
    public string LabelColumn { get; init; } = "label";
    public double ValFraction { get; init; } = 0.1;
    public int Epochs { get; init; } = 10;
    public int BatchSize { get; init; } = 32;
    public float LearningRate { get; init; } = 2e-3f;
    public float WeightDecay { get; init; } = 0.01f;
    public int EmbeddingDim { get; init; } = 100;
    public int Hidden { get; init; } = 128;
    public int Layers { get; init; } = 1;
    public float Dropout { get; init; } = 0.3f;
    public int MinFrequency { get; init; } = 1;
    public int MaxVocabulary { get; init; } = 30_000;
    /// <summary>Words kept of each text (the first ones).</summary>
    public int MaxLength { get; init; } = 200;
    public bool RemoveStopWords { get; init; }
    public bool PorterStem { get; init; }
    public string? Embeddings { get; init; }
    public ulong Seed { get; init; } = 1;
    /// <summary>The class names, sorted; class i is Labels[i].</summary>
    public string[] Labels { get; init; } = [];

    /// <summary>What is wrong with a configuration read back for --resume (the options' ranges), or null.</summary>
    public string? Problem()
    {
        if (string.IsNullOrEmpty(Csv) || TextColumn is null || LabelColumn is null || Labels is null) return "\"Csv\", a column or \"Labels\" is missing";
        if (ValFraction is <= 0 or >= 1 || double.IsNaN(ValFraction) || Epochs is < 1 or > 1_000_000 || BatchSize is < 1 or > 1 << 20)
            return $"validation fraction {ValFraction}, epochs {Epochs} or batch size {BatchSize} is out of range";
        if (!(LearningRate is > 0 and <= 100) || !(WeightDecay is >= 0 and <= 100) || !(Dropout is >= 0 and < 1))
            return $"learning rate {LearningRate}, weight decay {WeightDecay} or dropout {Dropout} is out of range";
        if (EmbeddingDim is < 1 or > 1 << 14 || Hidden is < 1 or > 1 << 14 || Layers is < 1 or > 64 || MinFrequency < 1 || MaxVocabulary < 3 || MaxLength is < 1 or > 1 << 20)
            return "a model or vocabulary size is out of range";
        return null;
    }

    public TextPreprocessor Preprocessor() => new()
    {
        RemoveStopWords = RemoveStopWords,
        Reduction = PorterStem ? WordReduction.PorterStem : WordReduction.None,
    };
}

/// <summary>`nabla train text-classifier --csv FILE`: a bidirectional-LSTM classifier of text,label rows.</summary>
public static class TextClassifierCommand
{
    public static Command Create()
    {
        var d = new TextClassifierConfig();
        var csv = new Option<string?>("--csv") { Description = "CSV file with a header; one text and its label per row (required for a new run)." };
        var textColumn = new Option<string>("--text-column") { Description = "Column of the texts (name or index).", DefaultValueFactory = _ => d.TextColumn };
        var labelColumn = new Option<string>("--label-column") { Description = "Column of the labels (name or index).", DefaultValueFactory = _ => d.LabelColumn };
        var valFraction = new Option<double>("--val-fraction") { Description = "Share of the rows (shuffled) held out for validation.", DefaultValueFactory = _ => d.ValFraction };
        var epochs = new Option<int>("--epochs") { Description = "Passes over the training rows.", DefaultValueFactory = _ => d.Epochs };
        var batchSize = new Option<int>("--batch-size") { Description = "Texts per step (batched by similar length).", DefaultValueFactory = _ => d.BatchSize };
        var lr = new Option<float>("--lr") { Description = "Peak AdamW learning rate (warm-up, then cosine decay).", DefaultValueFactory = _ => d.LearningRate };
        var weightDecay = new Option<float>("--weight-decay") { Description = "AdamW weight decay.", DefaultValueFactory = _ => d.WeightDecay };
        var embeddingDim = new Option<int>("--embedding-dim") { Description = "Word vector size.", DefaultValueFactory = _ => d.EmbeddingDim };
        var hidden = new Option<int>("--hidden") { Description = "LSTM hidden size per direction.", DefaultValueFactory = _ => d.Hidden };
        var layers = new Option<int>("--layers") { Description = "Stacked bidirectional LSTM layers.", DefaultValueFactory = _ => d.Layers };
        var dropout = new Option<float>("--dropout") { Description = "Dropout on the word vectors, between layers and before the output.", DefaultValueFactory = _ => d.Dropout };
        var minFreq = new Option<int>("--min-freq") { Description = "Words seen fewer times in training become <unk>.", DefaultValueFactory = _ => d.MinFrequency };
        var maxVocab = new Option<int>("--max-vocab") { Description = "Largest vocabulary (with <pad> and <unk>).", DefaultValueFactory = _ => d.MaxVocabulary };
        var maxLength = new Option<int>("--max-length") { Description = "Words kept of each text (the first ones).", DefaultValueFactory = _ => d.MaxLength };
        var stopWords = new Option<bool>("--remove-stop-words") { Description = "Drop English stop words (npm stopword's list)." };
        var stem = new Option<bool>("--stem") { Description = "Reduce words to Porter stems." };
        var embeddings = new Option<string?>("--embeddings") { Description = "Pretrained word vectors (GloVe or word2vec text format, --embedding-dim numbers a word)." };
        var seed = new Option<ulong>("--seed") { Description = "Seed for the split, the initial weights and the batch order.", DefaultValueFactory = _ => d.Seed };
        var run = new RunOptions("text-classifier");
        var quiet = new Option<bool>("--quiet") { Description = "Print only the final result." };
        valFraction.Within(0, 1, minExclusive: true, maxExclusive: true);
        epochs.Positive(1_000_000);
        batchSize.Positive(1 << 20);
        lr.Positive(100);
        weightDecay.NonNegative(100);
        embeddingDim.Positive(1 << 14);
        hidden.Positive(1 << 14);
        layers.Positive(64);
        dropout.Within(0, 1, maxExclusive: true);
        minFreq.Positive(int.MaxValue);
        maxVocab.Within(3, int.MaxValue);
        maxLength.Positive(1 << 20);

        var command = new Command("text-classifier", "Train a bidirectional-LSTM text classifier on a CSV of text,label rows.")
        {
            csv, textColumn, labelColumn, valFraction, epochs, batchSize, lr, weightDecay, embeddingDim, hidden, layers, dropout,
            minFreq, maxVocab, maxLength, stopWords, stem, embeddings, seed, quiet,
        };
        run.AddTo(command, quiet);
        command.SetAction((p, cancel) =>
        {
            var device = run.TrainingDevice(p); // first: a missing GPU is the error to report
            var (directory, resume) = run.RunDirectory(p);
            var configPath = Path.Combine(directory, "config.json");
            var config = resume ? RunConfigFile.Read<TextClassifierConfig>(configPath, c => c.Problem()) : d with
            {
                Csv = p.GetValue(csv) ?? throw new CliException("--csv is required: the texts and labels to train on."), TextColumn = p.GetValue(textColumn)!, LabelColumn = p.GetValue(labelColumn)!,
                ValFraction = p.GetValue(valFraction), Epochs = p.GetValue(epochs), BatchSize = p.GetValue(batchSize),
                LearningRate = p.GetValue(lr), WeightDecay = p.GetValue(weightDecay), EmbeddingDim = p.GetValue(embeddingDim),
                Hidden = p.GetValue(hidden), Layers = p.GetValue(layers), Dropout = p.GetValue(dropout), MinFrequency = p.GetValue(minFreq),
                MaxVocabulary = p.GetValue(maxVocab), MaxLength = p.GetValue(maxLength), RemoveStopWords = p.GetValue(stopWords),
                PorterStem = p.GetValue(stem), Embeddings = p.GetValue(embeddings), Seed = p.GetValue(seed),
            };
            if (!resume) RunDirectory.RefuseExistingRun(directory, configPath);
            return Task.FromResult(Train(config, directory, resume, p.GetValue(quiet), device, CliErrors.CommandPath(p), cancel));
        });
        return command;
    }

    /// <param name="resume">Continue the run in <paramref name="directory"/>: <paramref name="config"/> is its config.json,
    /// and the same CSV gives the same split, vocabulary and batches again.</param>
    private static int Train(TextClassifierConfig config, string directory, bool resume, bool quiet, Device device, string command, CancellationToken cancel)
    {
        if (resume) RunConfigFile.RequireUnchanged(config.Csv, config.CsvSha256, directory);
        var table = CsvTable.Read(config.Csv);
        int textIndex = table.ColumnIndex(config.TextColumn), labelIndex = table.ColumnIndex(config.LabelColumn);
        var labels = table.Rows.Select(r => r[labelIndex].Trim()).Distinct().Order(StringComparer.Ordinal).ToArray();
        if (labels.Length < 2) throw new CliException($"{config.Csv}: column '{table.Columns[labelIndex]}' holds {labels.Length} distinct label(s); a classifier needs at least 2.");
        int validationRows = (int)Math.Round(table.Rows.Count * config.ValFraction);
        if (validationRows < 1 || validationRows >= table.Rows.Count)
            throw new CliException($"{config.Csv}: {table.Rows.Count} rows leave no rows for {(validationRows < 1 ? "validation" : "training")} at --val-fraction {config.ValFraction}.");
        if (!resume) config = config with { Labels = labels, CsvSha256 = RunConfigFile.Sha256(config.Csv) };

        var preprocessor = config.Preprocessor();
        var classOf = labels.Select((name, i) => (name, i)).ToDictionary(x => x.name, x => x.i, StringComparer.Ordinal);
        var texts = table.Rows.Select(r => preprocessor.Tokens(r[textIndex])).ToArray();
        var targets = table.Rows.Select(r => classOf[r[labelIndex].Trim()]).ToArray();
        var order = Enumerable.Range(0, texts.Length).ToArray();
        new Random(unchecked((int)config.Seed)).Shuffle(order);
        var validationSet = order[..validationRows];
        var trainingSet = order[validationRows..];

        var vocabulary = WordVocabulary.Build(trainingSet.Select(i => texts[i]), config.MinFrequency, config.MaxVocabulary);
        int[] Encode(int i) => SequenceBatching.Truncate(vocabulary.Encode(texts[i]), config.MaxLength);
        var train = new SequenceClassificationBatches(trainingSet.Select(Encode).ToArray(), trainingSet.Select(i => targets[i]).ToArray(), config.BatchSize, config.Seed);
        var validation = new SequenceClassificationBatches(validationSet.Select(Encode).ToArray(), validationSet.Select(i => targets[i]).ToArray(), config.BatchSize, seed: null);

        Generator.ManualSeed(config.Seed);
        var model = new BiLstmClassifier(vocabulary.Count, labels.Length, config.EmbeddingDim, config.Hidden, config.Layers, config.Dropout);
        int pretrained = config.Embeddings is { } vectors ? model.LoadPretrainedEmbeddings(vectors, vocabulary) : 0;
        model.To(device);
        var (trainBatches, validationBatches) = (DeviceBatchSource.On(train, device), DeviceBatchSource.On(validation, device));

        if (!resume)
        {
            RunConfigFile.WriteNew(directory, Path.Combine(directory, "config.json"), config);
            vocabulary.Save(Path.Combine(directory, "vocab.json"));
        }
        int stepsPerEpoch = train.BatchesPerEpoch;
        var options = new TrainerOptions
        {
            Steps = config.Epochs * stepsPerEpoch, EvalEvery = stepsPerEpoch, EvalBatches = validation.BatchesPerEpoch,
            CheckpointEvery = stepsPerEpoch, Seed = config.Seed,
            ClipGradNorm = 1f, // recurrent nets' gradients spike now and then
        };
        var optimizer = new AdamW(model.Parameters(), config.LearningRate, weightDecay: config.WeightDecay);
        var schedule = new CosineWithWarmup(optimizer, warmupSteps: Math.Max(1, Math.Min(stepsPerEpoch, options.Steps / 20)), totalSteps: options.Steps);
        var trainer = new Trainer(model, (logits, y) => F.CrossEntropy(logits, y), trainBatches, optimizer, options, schedule, validationBatches, directory);
        trainer.Metrics["accuracy"] = Evaluation.Accuracy;
        var resumed = trainer.TryResume();
        if (!quiet)
        {
            Console.WriteLine($"data: {config.Csv} — {trainingSet.Length:N0} training and {validationRows:N0} validation texts, {labels.Length} classes; " +
                $"vocabulary {vocabulary.Count:N0} words{(config.Embeddings != null ? $" ({pretrained:N0} with pretrained vectors)" : "")}");
            Console.WriteLine($"model: bidirectional LSTM, {config.Layers} layer(s) of {config.Hidden}×2, embedding {config.EmbeddingDim}, " +
                $"{model.ParameterCount:N0} parameters; AdamW lr {config.LearningRate}, {config.Epochs} epochs of {stepsPerEpoch} steps{(device.IsCpu ? "" : $"; on {device}")}");
        }
        TrainingLoop.PrintResume(resumed, quiet, stepsPerEpoch);
        var progress = new TrainingProgress(options.Steps, "texts");
        EpochReport.Attach(trainer, progress, stepsPerEpoch, config.Epochs, classification: true, "val", quiet);
        var modelPath = Path.Combine(directory, "model.safetensors");
        trainer.AfterCheckpoint += c => model.Save(modelPath, new Dictionary<string, string>
        {
            ["format"] = "nabla-text-classifier",
            ["epoch"] = (c.Step / stepsPerEpoch).ToString(CultureInfo.InvariantCulture),
            ["config"] = JsonSerializer.Serialize(config),
        });
        if (TrainingLoop.Run(trainer, progress, command, cancel) != TrainingOutcome.Finished) return 130;
        EpochReport.WriteCharts(directory, EpochReport.History(trainer.MetricsPath!, stepsPerEpoch), classification: true, "val");
        Report(ClassificationMetrics.Evaluate(model, validationBatches, validation.BatchesPerEpoch, labels.Length), labels, directory);
        if (!quiet) Console.WriteLine($"run saved to {directory} (config.json, vocab.json, model.safetensors, checkpoints/, metrics.jsonl, loss.png, accuracy.png, confusion.png)");
        return 0;
    }

    /// <summary>Validation accuracy, a precision/recall/F1 table per class and the confusion-matrix chart.</summary>
    private static void Report(ClassificationMetrics metrics, string[] labels, string directory)
    {
        Console.WriteLine($"validation accuracy: {100 * metrics.Accuracy:F2}% ({metrics.Correct:N0} of {metrics.Total:N0} texts), macro F1 {metrics.MacroF1:F3}");
        var table = new Table().AddColumn("class");
        foreach (var column in new[] { "precision", "recall", "F1", "texts" }) table.AddColumn(new TableColumn(column).RightAligned());
        for (int c = 0; c < labels.Length; c++)
        {
            var m = metrics.PerClass[c];
            table.AddRow(Markup.Escape(labels[c]), $"{m.Precision:F3}", $"{m.Recall:F3}", $"{m.F1:F3}", $"{m.Support}");
        }
        // To whatever Console.Out is now (the shared AnsiConsole keeps the writer it started with).
        AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) }).Write(table);
        var chart = Path.Combine(directory, "confusion.png");
        Charts.Confusion(chart, "Confusion matrix (validation set)", metrics.Confusion, labels);
        Console.WriteLine($"confusion matrix: {chart}");
    }
}
