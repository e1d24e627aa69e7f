using Nabla.NN;

namespace Nabla.Models;

/// <summary>
/// A multi-layer perceptron: Linear → activation (→ dropout) for each hidden size, then a final Linear to the
/// outputs (logits for classification, values for regression).
/// </summary>
public sealed class Mlp : Module
{
    public int Inputs { get; }
    public IReadOnlyList<int> Hidden { get; }
    public int Outputs { get; }
    /// <summary>The registered layer stack ("layers.0", "layers.1", ...).</summary>
    public Sequential Layers => Child<Sequential>("layers");

    public Mlp(int inputs, IReadOnlyList<int> hidden, int outputs, string activation = "relu", float dropout = 0f, Generator? generator = null)
    {
        Inputs = inputs;
        Hidden = hidden.ToArray();
        Outputs = outputs;
        var layers = RegisterModule("layers", new Sequential());
        int width = inputs;
        foreach (var h in hidden)
        {
            layers.Add(new Linear(width, h, generator: generator));
            layers.Add(Activation(activation));
            // Dropout draws from the default generator, which a Trainer seeds per step: masks then follow the
            // step, not the history, so a resumed run matches an uninterrupted one. (The generator is for weights.)
            if (dropout > 0) layers.Add(new Dropout(dropout));
            width = h;
        }
        layers.Add(new Linear(width, outputs, generator: generator));
    }

    /// <summary>An activation module by name: relu, leaky_relu, gelu, gelu_tanh, silu, tanh, sigmoid.</summary>
    public static Module Activation(string name) => name.ToLowerInvariant() switch
    {
        "relu" => new ReLU(),
        "leaky_relu" or "leakyrelu" => new LeakyReLU(),
        "gelu" => new GELU(),
        "gelu_tanh" => new GELU(GeluApproximation.Tanh),
        "silu" or "swish" => new SiLU(),
        "tanh" => new Tanh(),
        "sigmoid" => new Sigmoid(),
        _ => throw new ArgumentException($"Unknown activation '{name}' (relu, leaky_relu, gelu, gelu_tanh, silu, tanh, sigmoid)."),
    };

    /// <summary>The linear layers, in order (for loading weights layer by layer).</summary>
    public IEnumerable<Linear> LinearLayers => Layers.Children().OfType<Linear>();

    public override Tensor Forward(Tensor input) => ForwardChild("layers", input);
}
