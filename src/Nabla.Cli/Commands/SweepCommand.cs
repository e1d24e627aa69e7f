using System.CommandLine;
using System.Globalization;
using Nabla.Cli.Ui;

namespace Nabla.Cli.Commands;

/// <summary>
/// `nabla sweep --knob K --values A,B,C -- train MODEL [options]`: trains the same model once per value of one
/// training knob, each point a normal run directory (SWEEP/K=VALUE, made by the train command itself), then overlays
/// their curves (`nabla compare`) and plots the final errors against the knob (sweep.png). A sweep that was stopped
/// continues where it was: a point whose directory holds a run is resumed (a finished one just reports again).
/// </summary>
public static class SweepCommand
{
    /// <summary>Each knob and the option of the train commands it sets; width and depth set --hidden for the MLP.</summary>
    private static readonly Dictionary<string, string> Knobs = new()
    {
        ["lr"] = "--lr", ["batch-size"] = "--batch-size", ["weight-decay"] = "--weight-decay", ["optimizer"] = "--optimizer",
        ["augment"] = "--augment", ["width"] = "--width", ["depth"] = "--depth", ["label-noise"] = "--label-noise", ["dropout"] = "--dropout",
        ["epochs"] = "--epochs", ["subset"] = "--subset", ["erasing"] = "--erasing", ["label-smoothing"] = "--label-smoothing",
    };

    public static Command Create()
    {
        var knob = new Option<string>("--knob") { Description = $"The knob to vary: {string.Join(", ", Knobs.Keys)}.", Required = true };
        var values = new Option<string>("--values") { Description = "Comma-separated values of the knob (e.g. 1e-3,3e-3,1e-2; on,off; sgd,adamw).", Required = true };
        var output = new Option<string?>("--out") { Description = "Sweep directory; each point is a run directory in it (default: runs/sweep-<knob>-<time>)." };
        var device = DeviceOption.Create();
        var train = new Argument<string[]>("train-command") { Description = "After --: the training command without --out, e.g. -- train lenet --epochs 3 --subset 5000.", Arity = ArgumentArity.OneOrMore };
        knob.Require(k => Knobs.ContainsKey(k), k => $"--knob must be one of {string.Join(", ", Knobs.Keys)}, got '{k}'.");
        var command = new Command("sweep", "Train one model once per value of a knob (lr, batch size, width, depth, weight decay, augmentation, optimizer, ...) and compare the runs.")
        {
            knob, values, output, device, train,
        };
        command.SetAction(p =>
        {
            var name = p.GetValue(knob)!;
            var points = p.GetValue(values)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            if (points.Length == 0) throw new CliException("--values: give at least one value.");
            if (points.Distinct().Count() != points.Length) throw new CliException("--values: a value is listed twice.");
            var trainArgs = p.GetValue(train)!;
            var dir = p.GetValue(output) ?? Path.Combine("runs", $"sweep-{name}-{DateTime.Now:yyyyMMdd-HHmmss}");
            return Run(name, points, trainArgs, dir, p.GetValue(device)!);
        });
        return command;
    }

    /// <param name="device">Where every point trains (--device of the sweep, given to each run, resumed ones included).</param>
    private static int Run(string knob, string[] values, string[] trainArgs, string directory, string device)
    {
        var trainCommand = TrainCommand(trainArgs);
        var model = trainCommand.Name;
        foreach (var reserved in new[] { "--out", "--resume" })
            if (trainArgs.Contains(reserved)) throw new CliException($"the training command must not have {reserved}: the sweep gives each point its own run directory.");
        if (trainArgs.Contains("--device")) throw new CliException("the training command must not have --device: give it to the sweep (nabla sweep --device ...), which trains every point there.");
        DeviceOption.Resolve(device); // a missing GPU is one error, not one per point
        Directory.CreateDirectory(directory);
        var runs = new List<RunHistory>();
        foreach (var value in values)
        {
            var pointName = $"{knob}={value}";
            if (pointName.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0) throw new CliException($"--values: '{value}' cannot be part of a directory name.");
            var pointDir = Path.Combine(directory, pointName);
            bool resume = File.Exists(Path.Combine(pointDir, "config.json"));
            string[] args = resume
                ? ["train", model, "--out", pointDir, "--resume", "--device", device]
                : [.. WithKnob(knob, value, trainCommand, trainArgs), "--out", pointDir, "--device", device];
            Console.WriteLine($"== {pointName}: nabla {string.Join(' ', args)}");
            int exit = NablaCli.Run(args);
            if (exit != 0) throw new CliException($"the run of {pointName} failed (exit code {exit}); fix it and run the sweep again to continue (finished points are kept).");
            runs.Add(CompareCommand.Load(pointDir));
        }
        CompareCommand.Write(directory, runs, $"{model}: {knob} sweep");
        WriteKnobChart(directory, knob, values, runs);
        return 0;
    }

    /// <summary>The `nabla train MODEL` command the arguments name (checked before anything runs).</summary>
    private static Command TrainCommand(string[] trainArgs)
    {
        var train = NablaCli.Build().Subcommands.First(c => c.Name == "train");
        if (trainArgs.Length < 2 || trainArgs[0] != "train")
            throw new CliException($"after --, give a training command: train {string.Join("|", train.Subcommands.Where(c => c.Name != "gpt").Select(c => c.Name))} [options].");
        return train.Subcommands.FirstOrDefault(c => c.Name == trainArgs[1] && c.Name != "gpt")
            ?? throw new CliException($"'train {trainArgs[1]}' cannot be swept; sweeps train {string.Join(", ", train.Subcommands.Where(c => c.Name != "gpt").Select(c => c.Name))}.");
    }

    /// <summary>The training command's arguments with the knob set to <paramref name="value"/>. The MLP has no
    /// --width or --depth: its hidden layers (--hidden) are set instead, keeping the other dimension of the
    /// command's --hidden (default: one layer of 64).</summary>
    private static string[] WithKnob(string knob, string value, Command trainCommand, string[] trainArgs)
    {
        var option = Knobs[knob];
        bool has(string name) => trainCommand.Options.Any(o => o.Name == name);
        if (knob is "width" or "depth" && !has(option) && has("--hidden"))
        {
            if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n < 1)
                throw new CliException($"--values: '{value}' is not a positive {knob}.");
            int at = Array.IndexOf(trainArgs, "--hidden");
            var hidden = (at >= 0 && at + 1 < trainArgs.Length ? trainArgs[at + 1] : "64").Split(',', StringSplitOptions.TrimEntries);
            var layers = knob == "width" ? Enumerable.Repeat(value, hidden.Length) : Enumerable.Repeat(hidden[0], n);
            var rest = at >= 0 ? trainArgs.Take(at).Concat(trainArgs.Skip(at + 2)) : trainArgs;
            return [.. rest, "--hidden", string.Join(",", layers)];
        }
        if (!has(option))
            throw new CliException($"--knob {knob}: `nabla train {trainCommand.Name}` has no {option} option, so it cannot be swept over {knob}.");
        if (trainArgs.Contains(option)) throw new CliException($"the training command sets {option} itself; the sweep sets it for each point (--knob {knob}).");
        return [.. trainArgs, option, value];
    }

    /// <summary>sweep.png: the last validation's error (1 − accuracy) and the training error against the knob, or
    /// the losses for runs without accuracy: the double-descent plot when the knob is the width.</summary>
    private static void WriteKnobChart(string directory, string knob, IReadOnlyList<string> values, IReadOnlyList<RunHistory> runs)
    {
        var path = Path.Combine(directory, "sweep.png");
        if (runs.All(r => r.HasAccuracy))
            Charts.Categories(path, $"Final error against {knob}", knob, "error (1 − accuracy)", values,
                ("validation / test", runs.Select(r => 1 - r.Last.ValidationAccuracy).ToArray()), ("train (last epoch)", runs.Select(r => 1 - r.Last.TrainAccuracy).ToArray()));
        else
            Charts.Categories(path, $"Final loss against {knob}", knob, "loss", values,
                ("validation", runs.Select(r => r.Last.ValidationLoss).ToArray()), ("train (last epoch)", runs.Select(r => r.Last.TrainLoss).ToArray()));
        Console.WriteLine($"{path}: final error against {knob}");
    }
}
