using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Nabla.Autograd;
using Nabla.Cli.Ui;
using Nabla.NN;
using Nabla.Optim;

namespace Nabla.Cli.Commands;

/// <summary>How the recurrent weights W_hh start: PyTorch's uniform default, or each gate's square block orthogonal
/// or the identity (Le et al. 2015's IRNN), each times the gain.</summary>
public enum RecurrentInit { Default, Orthogonal, Identity }

/// <summary>One run of the adding-problem demonstration.</summary>
public sealed record AddingProblemConfig
{
    public string[] Models { get; init; } = ["rnn", "lstm", "gru"];
    public int[] Lengths { get; init; } = [50, 100, 200, 400];
    public int Hidden { get; init; } = 32;
    public int Steps { get; init; } = 500;
    public int BatchSize { get; init; } = 32;
    public float LearningRate { get; init; } = 0.01f;
    /// <summary>adam, or sgd (plain gradient descent, whose step grows with the gradient: where exploding gradients bite).</summary>
    public string Optimizer { get; init; } = "adam";
    /// <summary>Largest total gradient norm before each update; 0 leaves gradients unclipped.</summary>
    public float Clip { get; init; }
    public RecurrentInit RecurrentInit { get; init; } = RecurrentInit.Default;
    public float RecurrentGain { get; init; } = 1f;
    public RnnNonlinearity Nonlinearity { get; init; } = RnnNonlinearity.Tanh;
    public ulong Seed { get; init; } = 1;
}

/// <summary>What one model reached at one sequence length.</summary>
public sealed record AddingProblemResult(string Model, int Length, double FinalMse, double[] LossCurve, double[] GradNormAtStart,
    double[] GradNormAtEnd, double LargestGradNorm, int NonFiniteSteps, double Seconds);

/// <summary>
/// `nabla demo adding-problem`: the vanishing/exploding-gradient story on Hochreiter &amp; Schmidhuber's adding problem.
/// Each sequence has T steps of two features, a value drawn from U(0, 1) and a marker that is 1 at two steps (one in
/// each half) and 0 elsewhere; the target is the sum of the two marked values. Always predicting the mean (1) scores
/// MSE = Var(sum) = 2/12 ≈ 0.167, so a model must carry information across up to T steps to beat it.
/// For each model and T the run trains on fresh random batches, measures the norm of the gradient of the loss with
/// respect to the input at each step t (what reaches step t back through the recurrence) before and after training,
/// and writes charts: the gradient norm over t per model (log scale), and the loss curves per T.
/// </summary>
public static class AddingProblemCommand
{
    /// <summary>MSE of always predicting the mean sum: Var(U1 + U2) = 2/12.</summary>
    public const double MeanBaseline = 2.0 / 12;
    private const int TestSequences = 1000;

    public static Command Create()
    {
        var defaults = new AddingProblemConfig();
        var models = new Option<string>("--models") { Description = "Comma-separated: rnn, lstm, gru.", DefaultValueFactory = _ => string.Join(",", defaults.Models) };
        var lengths = new Option<string>("--lengths") { Description = "Comma-separated sequence lengths T.", DefaultValueFactory = _ => string.Join(",", defaults.Lengths) };
        var hidden = new Option<int>("--hidden") { Description = "Hidden size of every model.", DefaultValueFactory = _ => defaults.Hidden };
        var steps = new Option<int>("--steps") { Description = "Training steps per model and length (a fresh random batch each).", DefaultValueFactory = _ => defaults.Steps };
        var batchSize = new Option<int>("--batch-size") { Description = "Sequences per step.", DefaultValueFactory = _ => defaults.BatchSize };
        var lr = new Option<float>("--lr") { Description = "Learning rate.", DefaultValueFactory = _ => defaults.LearningRate };
        var optimizer = new Option<string>("--optimizer") { Description = "adam, or sgd (its step grows with the gradient, so an exploding gradient wrecks it unless clipped).", DefaultValueFactory = _ => defaults.Optimizer };
        var clip = new Option<float>("--clip") { Description = "Clip the total gradient norm to this before each update (0: off).", DefaultValueFactory = _ => defaults.Clip };
        var init = new Option<RecurrentInit>("--recurrent-init") { Description = "default (PyTorch's uniform), orthogonal or identity, for W_hh.", DefaultValueFactory = _ => defaults.RecurrentInit };
        var gain = new Option<float>("--recurrent-gain") { Description = "Scale of the orthogonal or identity W_hh (above 1 makes the plain RNN explode).", DefaultValueFactory = _ => defaults.RecurrentGain };
        var nonlinearity = new Option<RnnNonlinearity>("--nonlinearity") { Description = "The plain RNN's activation: tanh or relu.", DefaultValueFactory = _ => defaults.Nonlinearity };
        var seed = new Option<ulong>("--seed") { Description = "Seed for the weights and the data.", DefaultValueFactory = _ => defaults.Seed };
        var output = new Option<string?>("--out") { Description = "Directory for the charts and results.md (default: runs/adding-problem-<time>)." };
        hidden.Positive(4096);
        steps.Positive(1_000_000);
        batchSize.Positive(1 << 16);
        lr.Positive(10);
        clip.NonNegative(1e6);
        gain.Positive(100);
        models.Require(m => ParseList(m, s => s).All(name => name is "rnn" or "lstm" or "gru"), m => $"--models takes rnn, lstm and gru, got '{m}'.");
        optimizer.Require(o => o is "adam" or "sgd", o => $"--optimizer takes adam or sgd, got '{o}'.");
        lengths.Require(l => TryParseLengths(l, out _), l => $"--lengths must be comma-separated integers in 2..100000, got '{l}'.");

        var command = new Command("adding-problem", "The vanishing/exploding-gradient demonstration: RNN, LSTM and GRU on the adding problem, with gradient-norm charts.")
        {
            models, lengths, hidden, steps, batchSize, lr, optimizer, clip, init, gain, nonlinearity, seed, output,
        };
        command.SetAction(p =>
        {
            TryParseLengths(p.GetValue(lengths)!, out var parsedLengths);
            var config = new AddingProblemConfig
            {
                Models = ParseList(p.GetValue(models)!, s => s),
                Lengths = parsedLengths,
                Hidden = p.GetValue(hidden),
                Steps = p.GetValue(steps),
                BatchSize = p.GetValue(batchSize),
                LearningRate = p.GetValue(lr),
                Optimizer = p.GetValue(optimizer)!,
                Clip = p.GetValue(clip),
                RecurrentInit = p.GetValue(init),
                RecurrentGain = p.GetValue(gain),
                Nonlinearity = p.GetValue(nonlinearity),
                Seed = p.GetValue(seed),
            };
            string directory = p.GetValue(output) ?? Path.Combine("runs", $"adding-problem-{DateTime.Now:yyyyMMdd-HHmmss}");
            Directory.CreateDirectory(directory);
            var results = new List<AddingProblemResult>();
            Console.WriteLine(Header);
            foreach (int length in config.Lengths)
                foreach (var model in config.Models)
                {
                    var result = Train(config, model, length);
                    results.Add(result);
                    Console.WriteLine(Row(result));
                }
            WriteReport(config, results, directory);
            Console.WriteLine($"charts and results.md in {directory}");
            return 0;
        });
        return command;
    }

    /// <summary>Trains one model at one length and measures it.</summary>
    public static AddingProblemResult Train(AddingProblemConfig config, string model, int length)
    {
        var watch = Stopwatch.StartNew();
        var generator = new Generator(config.Seed);
        RecurrentBase layer = model switch
        {
            "rnn" => new RNN(2, config.Hidden, nonlinearity: config.Nonlinearity, generator: generator),
            "lstm" => new LSTM(2, config.Hidden, generator: generator),
            "gru" => new GRU(2, config.Hidden, generator: generator),
            _ => throw new ArgumentException($"adding problem: unknown model '{model}' (rnn, lstm or gru)."),
        };
        InitialiseRecurrentWeights(layer, config, generator);
        var head = new Linear(config.Hidden, 1, generator: generator);
        var parameters = layer.Parameters().Concat(head.Parameters()).ToArray();
        Optimizer optimizer = config.Optimizer == "sgd" ? new SGD(parameters, config.LearningRate) : new Adam(parameters, config.LearningRate);
        var data = new Generator(config.Seed + 1000);
        Tensor Predict(Tensor x) => head.Forward(layer.Forward(x).Select(0, length - 1)); // (B, 1) from the last step

        var probe = Batch(new Generator(config.Seed + 2000), length, 256);
        var atStart = GradientNormPerStep(probe, Predict, parameters);
        var losses = new double[config.Steps];
        double largest = 0;
        int nonFinite = 0;
        for (int step = 0; step < config.Steps; step++)
        {
            var (x, target) = Batch(data, length, config.BatchSize);
            optimizer.ZeroGrad();
            var loss = F.MseLoss(Predict(x), target);
            loss.Backward();
            losses[step] = loss.Item();
            double norm = Math.Sqrt(parameters.Sum(p => p.Grad == null ? 0 : p.Grad.ToArray().Sum(v => (double)v * v)));
            if (!double.IsFinite(norm) || !double.IsFinite(losses[step])) { nonFinite++; continue; } // never apply a NaN/∞ update
            largest = Math.Max(largest, norm);
            if (config.Clip > 0) GradientClipping.ClipGradNorm(parameters, config.Clip, norm);
            optimizer.Step();
        }
        var atEnd = GradientNormPerStep(probe, Predict, parameters);
        double finalMse;
        using (GradMode.NoGrad())
        {
            var (x, target) = Batch(new Generator(config.Seed + 3000), length, TestSequences);
            finalMse = F.MseLoss(Predict(x), target).Item();
        }
        return new AddingProblemResult(model, length, finalMse, losses, atStart, atEnd, largest, nonFinite, watch.Elapsed.TotalSeconds);
    }

    /// <summary>A batch (T, B, 2) of value/marker pairs and its targets (B, 1).</summary>
    public static (Tensor X, Tensor Target) Batch(Generator g, int length, int batch)
    {
        var x = new float[length * batch * 2];
        var target = new float[batch];
        for (int b = 0; b < batch; b++)
        {
            int first = g.NextInt(length / 2), second = length / 2 + g.NextInt(length - length / 2);
            for (int t = 0; t < length; t++)
            {
                float value = g.NextFloat();
                int at = (t * batch + b) * 2;
                x[at] = value;
                if (t == first || t == second)
                {
                    x[at + 1] = 1;
                    target[b] += value;
                }
            }
        }
        return (Tensor.FromArray(x, length, batch, 2), Tensor.FromArray(target, batch, 1));
    }

    /// <summary>‖∂loss/∂x_t‖ for each step t: how much gradient reaches step t back through the recurrence.</summary>
    private static double[] GradientNormPerStep((Tensor X, Tensor Target) probe, Func<Tensor, Tensor> predict, Tensor[] parameters)
    {
        var x = probe.X.Clone().RequiresGrad_();
        F.MseLoss(predict(x), probe.Target).Backward();
        foreach (var p in parameters) p.Grad = null;
        var grad = x.Grad!.ToArray();
        int length = x.Size(0), width = grad.Length / length;
        return Enumerable.Range(0, length).Select(t => Math.Sqrt(grad.AsSpan(t * width, width).ToArray().Sum(v => (double)v * v))).ToArray();
    }

    private static void InitialiseRecurrentWeights(RecurrentBase layer, AddingProblemConfig config, Generator generator)
    {
        if (config.RecurrentInit == RecurrentInit.Default) return;
        var weight = layer.StateDict()["weight_hh_l0"]; // (gates·H, H): each gate's square block on its own
        using var _ = GradMode.NoGrad();
        for (int block = 0; block < weight.Size(0) / config.Hidden; block++)
        {
            var square = weight.Narrow(0, block * config.Hidden, config.Hidden);
            if (config.RecurrentInit == RecurrentInit.Orthogonal) Init.Orthogonal(square, config.RecurrentGain, generator);
            else
            {
                var span = square.AsSpan();
                span.Clear();
                for (int i = 0; i < config.Hidden; i++) span[i * config.Hidden + i] = config.RecurrentGain;
            }
        }
    }

    private static string Row(AddingProblemResult r)
    {
        string ratio = r.GradNormAtStart[^1] > 0 ? (r.GradNormAtStart[0] / r.GradNormAtStart[^1]).ToString("G2", CultureInfo.InvariantCulture) : "n/a";
        string verdict = r.FinalMse < MeanBaseline / 4 ? "solved" : r.FinalMse < 0.9 * MeanBaseline ? "partly" : "not learnt";
        return string.Create(CultureInfo.InvariantCulture,
            $"| {r.Model.ToUpperInvariant()} | {r.Length} | {r.FinalMse:F4} | {verdict} | {ratio} | {r.LargestGradNorm:G3} | {r.NonFiniteSteps} | {r.Seconds:F0} |");
    }

    private static void WriteReport(AddingProblemConfig config, List<AddingProblemResult> results, string directory)
    {
        foreach (var model in config.Models)
        {
            var mine = results.Where(r => r.Model == model).ToArray();
            int longest = mine.Max(r => r.Length);
            var steps = Enumerable.Range(0, longest).Select(t => (double)t).ToArray();
            // Aligned on the last step (where the loss is taken): x is the distance back from it.
            double[] Log10(double[] norms) => steps.Select(d => d < norms.Length ? Math.Log10(Math.Max(norms[norms.Length - 1 - (int)d], 1e-30)) : double.NaN).ToArray();
            var series = mine.SelectMany(r => new[] { ($"T={r.Length}, at start", Log10(r.GradNormAtStart)), ($"T={r.Length}, trained", Log10(r.GradNormAtEnd)) }).ToArray();
            Charts.Line(Path.Combine(directory, $"adding-gradnorm-{model}.png"), $"{model.ToUpperInvariant()}: gradient reaching each step",
                "steps back from the last step (where the loss is taken)", "log10 ‖∂loss/∂x_t‖", steps, series);
        }
        foreach (int length in config.Lengths)
        {
            var mine = results.Where(r => r.Length == length).ToArray();
            var x = Enumerable.Range(1, config.Steps).Select(s => (double)s).ToArray();
            var series = mine.Select(r => (r.Model.ToUpperInvariant(), Smooth(r.LossCurve))).Append(("predict the mean (0.167)", x.Select(_ => MeanBaseline).ToArray())).ToArray();
            Charts.Line(Path.Combine(directory, $"adding-loss-T{length}.png"), $"Adding problem, T = {length}: training loss", "step", "MSE (moving average of 25 steps)", x, series);
        }
        var lines = new List<string>
        {
            $"Adding problem: hidden {config.Hidden}, {config.Steps} steps of batch {config.BatchSize}, {config.Optimizer} lr {config.LearningRate}, clip {(config.Clip > 0 ? config.Clip.ToString(CultureInfo.InvariantCulture) : "off")}, " +
            $"W_hh init {config.RecurrentInit.ToString().ToLowerInvariant()} (gain {config.RecurrentGain}), RNN {config.Nonlinearity.ToString().ToLowerInvariant()}, seed {config.Seed}; " +
            $"final MSE on {TestSequences} fresh sequences (predicting the mean: {MeanBaseline:F3}).",
            "",
            Header,
            "|---|---:|---:|---|---:|---:|---:|---:|",
        };
        lines.AddRange(results.Select(Row));
        File.WriteAllLines(Path.Combine(directory, "results.md"), lines);
    }

    /// <summary>The table's header: ratio = gradient norm at the first step / at the last step, before training.</summary>
    public const string Header = "| model | T | final MSE | vs 0.167 | ‖g₁‖/‖g_T‖ at start | largest grad norm | NaN/∞ steps | seconds |";

    private static double[] Smooth(double[] values) =>
        values.Select((_, i) =>
        {
            var window = values.Skip(Math.Max(0, i - 24)).Take(Math.Min(25, i + 1)).Where(double.IsFinite).ToArray();
            return window.Length == 0 ? double.NaN : window.Average();
        }).ToArray();

    private static T[] ParseList<T>(string text, Func<string, T> parse) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(parse).ToArray();

    private static bool TryParseLengths(string text, out int[] lengths)
    {
        lengths = [];
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var parsed = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out parsed[i]) || parsed[i] is < 2 or > 100_000) return false;
        lengths = parsed;
        return parts.Length > 0;
    }
}
