using Nabla.NN;
using Nabla.Optim;

namespace Nabla.Cli.Runs;

/// <summary>The optimizers the training commands offer by name (--optimizer).</summary>
public static class Optimizers
{
    public const string Names = "adamw, adam, sgd, sgd-nesterov, rmsprop";

    public static bool IsKnown(string name) => Names.Split(", ").Contains(name.ToLowerInvariant());

    /// <param name="momentum">For SGD (heavy-ball, or Nesterov's).</param>
    public static Optimizer Create(string name, Module model, float learningRate, float weightDecay, float momentum) => name switch
    {
        "adamw" => new AdamW(model.Parameters(), learningRate, weightDecay: weightDecay),
        "adam" => new Adam(model.Parameters(), learningRate, weightDecay: weightDecay),
        "sgd" => new SGD(model.Parameters(), learningRate, momentum: momentum, weightDecay: weightDecay),
        "sgd-nesterov" => new SGD(model.Parameters(), learningRate, momentum: momentum, weightDecay: weightDecay, nesterov: true),
        "rmsprop" => new RMSProp(model.Parameters(), learningRate, weightDecay: weightDecay),
        _ => throw new CliException($"--optimizer: unknown optimizer '{name}' ({Names})."),
    };
}
