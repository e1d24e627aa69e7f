using Nabla.Training;

namespace Nabla.Cli.Ui;

/// <summary>One epoch's means, rebuilt from metrics.jsonl (so a resumed run charts its whole history).</summary>
public sealed record EpochSummary(int Epoch, double TrainLoss, double TrainAccuracy, double ValidationLoss, double ValidationAccuracy);

/// <summary>
/// What the epoch-based training commands (`train mlp`, `train lenet|vgg|resnet|vit`) show: a progress line per
/// step with the epoch's running accuracy, an epoch summary line now and then, and loss/accuracy charts per epoch.
/// </summary>
public static class EpochReport
{
    /// <summary>Hooks the progress display to the trainer. <paramref name="validationName"/> labels the held-out
    /// data ("val", or "test" when the test split is what is evaluated each epoch).</summary>
    public static void Attach(Trainer trainer, TrainingProgress progress, int stepsPerEpoch, int epochs, bool classification, string validationName, bool quiet)
    {
        double epochLoss = 0, epochAccuracy = 0;
        long epochSamples = 0;
        trainer.AfterStep += s =>
        {
            epochLoss += s.Loss * s.Samples;
            epochAccuracy += s.Metrics.GetValueOrDefault("accuracy") * s.Samples;
            epochSamples += s.Samples;
            if (quiet) return;
            var acc = classification ? $"acc {100 * epochAccuracy / epochSamples:F1}%" : "";
            progress.Step(s.Step, $"epoch {(s.Step - 1) / stepsPerEpoch + 1}/{epochs}  loss {s.Loss:F4}  {acc}", s.SamplesPerSecond);
        };
        trainer.AfterEvaluation += e =>
        {
            int epoch = e.Step / stepsPerEpoch;
            double trainLoss = epochLoss / Math.Max(1, epochSamples), trainAccuracy = epochAccuracy / Math.Max(1, epochSamples);
            (epochLoss, epochAccuracy, epochSamples) = (0, 0, 0);
            if (quiet || !(epoch == 1 || epoch == epochs || epoch % Math.Max(1, epochs / 10) == 0)) return;
            progress.Line(classification
                ? $"epoch {epoch,3}: train loss {trainLoss:F4} acc {100 * trainAccuracy:F1}% | {validationName} loss {e.Loss:F4} acc {100 * e.Metrics["accuracy"]:F1}%"
                : $"epoch {epoch,3}: train mse {trainLoss:F4} | {validationName} mse {e.Loss:F4} rmse {Math.Sqrt(e.Loss):F4}");
        };
    }

    /// <summary>Per-epoch means of the step records (weighted by their samples) and the epoch's validation.</summary>
    public static List<EpochSummary> History(string metricsPath, int stepsPerEpoch)
    {
        var history = new List<EpochSummary>();
        double loss = 0, accuracy = 0, samples = 0;
        foreach (var r in MetricsLog.Read(metricsPath))
        {
            if (r["loss"] is { } l)
            {
                double n = r["samples"]!.GetValue<double>();
                loss += l.GetValue<double>() * n;
                accuracy += (r["accuracy"]?.GetValue<double>() ?? double.NaN) * n;
                samples += n;
            }
            if (r.ContainsKey("val_loss")) // null when the validation was not finite
            {
                history.Add(new EpochSummary(r["step"]!.GetValue<int>() / stepsPerEpoch, loss / samples, accuracy / samples,
                    r["val_loss"]?.GetValue<double>() ?? double.NaN, r["val_accuracy"]?.GetValue<double>() ?? double.NaN));
                (loss, accuracy, samples) = (0, 0, 0);
            }
        }
        if (history.Count == 0) throw new CliException($"{metricsPath}: no epoch was validated (is the validation split empty? raise --val-fraction).");
        return history;
    }

    /// <summary>loss.png and (for classification) accuracy.png in <paramref name="directory"/>.</summary>
    public static void WriteCharts(string directory, List<EpochSummary> history, bool classification, string validationName)
    {
        var x = history.Select(h => (double)h.Epoch).ToArray();
        Charts.Line(Path.Combine(directory, "loss.png"), "Loss", "epoch", classification ? "cross-entropy" : "mean squared error", x,
            ("train", history.Select(h => h.TrainLoss).ToArray()), (validationName, history.Select(h => h.ValidationLoss).ToArray()));
        if (classification)
            Charts.Line(Path.Combine(directory, "accuracy.png"), "Accuracy", "epoch", "accuracy", x,
                ("train", history.Select(h => h.TrainAccuracy).ToArray()), (validationName, history.Select(h => h.ValidationAccuracy).ToArray()));
    }
}
