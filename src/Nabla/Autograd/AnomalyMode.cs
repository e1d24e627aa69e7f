using System.Numerics;

namespace Nabla.Autograd;

/// <summary>
/// Finds the op that first produced a NaN or an infinity, like PyTorch's <c>torch.autograd.detect_anomaly()</c>:
/// inside <c>using (AnomalyMode.Enable()) { ... }</c> the output of every op recorded for backward and every
/// gradient an op's backward produces is scanned, and the first non-finite one throws a
/// <see cref="NonFiniteValueException"/> naming the op, the module that ran it and the tensor's shape. Ops are
/// recorded when grad mode is on and an input requires grad, which in a training step is every op downstream of a
/// parameter. Outside the scope nothing is scanned. The flag is per thread.
/// </summary>
public static class AnomalyMode
{
    [ThreadStatic] private static int _enabledDepth;

    public static bool IsEnabled => _enabledDepth > 0;

    /// <summary>Turns the checks on until the returned scope is disposed (scopes nest).</summary>
    public static IDisposable Enable()
    {
        _enabledDepth++;
        return new Scope();
    }

    private sealed class Scope : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            _enabledDepth--;
        }
    }

    /// <summary>Notes which module ran the op that just recorded <paramref name="output"/> (for backward's
    /// messages), and throws if the output holds a NaN or an infinity.</summary>
    internal static void CheckRecorded(Tensor output)
    {
        var node = output.GradFn!;
        node.ModulePath = ModuleContext.CurrentPath;
        // A view (reshape, slice, ...) reads its input's memory, which was checked when it was produced.
        foreach (var input in node.Inputs)
            if (input != null && input.Storage == output.Storage) return;
        if (FirstNonFinite(output) is { } bad)
            throw new NonFiniteValueException(node.Name, node.ModulePath, output.Shape.ToArray(), inBackward: false, bad);
    }

    /// <summary>Throws if a gradient <paramref name="node"/>'s backward returned holds a NaN or an infinity.</summary>
    internal static void CheckBackward(Node node, Tensor?[] gradients)
    {
        foreach (var g in gradients)
            if (g != null && FirstNonFinite(g) is { } bad)
                throw new NonFiniteValueException(node.Name, node.ModulePath, g.Shape.ToArray(), inBackward: true, bad);
    }

    /// <summary>The first NaN or infinity among the elements of a Float32 tensor, or null if all are finite.</summary>
    internal static unsafe float? FirstNonFinite(Tensor t)
    {
        if (t.DType != DType.Float32 || t.Count == 0) return null;
        using var _ = GradMode.NoGrad();
        var c = t.Contiguous();
        ReadOnlySpan<float> values = c.Device.IsCpu ? new ReadOnlySpan<float>(c.Data, c.Count) : c.ToArray();
        float? found = null;
        // x·0 is 0 for every finite x and NaN for NaN and ±∞: one multiply and compare per lane.
        int i = 0;
        if (Vector.IsHardwareAccelerated)
            for (; i + Vector<float>.Count <= values.Length; i += Vector<float>.Count)
                if (!Vector.EqualsAll(new Vector<float>(values[i..]) * Vector<float>.Zero, Vector<float>.Zero)) break;
        for (; i < values.Length; i++)
            if (!float.IsFinite(values[i])) { found = values[i]; break; }
        GC.KeepAlive(c);
        return found;
    }
}

/// <summary>
/// Thrown in <see cref="AnomalyMode"/> by the first op whose output (forward) or gradient (backward) holds a NaN
/// or an infinity. The message is one line, e.g. "op Exp in module 'h.3.mlp' produced Inf in its output of shape
/// (4, 64, 3072) during the forward pass".
/// </summary>
public sealed class NonFiniteValueException : Exception
{
    internal NonFiniteValueException(string opName, string? modulePath, int[] shape, bool inBackward, float value)
        : base(Describe(opName, modulePath, shape, inBackward, value))
    {
        OpName = opName;
        ModulePath = modulePath;
        Shape = shape;
        InBackward = inBackward;
    }

    /// <summary>The op, as recorded for autograd ("Exp", "MatMul", "CrossEntropy", ...).</summary>
    public string OpName { get; }

    /// <summary>Dotted name of the innermost sub-module that ran the op ("h.3.mlp.c_fc"), relative to the model
    /// the caller ran; null when the op ran outside any sub-module.</summary>
    public string? ModulePath { get; }

    /// <summary>Shape of the tensor that holds the first NaN or infinity.</summary>
    public int[] Shape { get; }

    /// <summary>False: the op's forward output; true: a gradient the op's backward produced for one of its inputs.</summary>
    public bool InBackward { get; }

    private static string Describe(string opName, string? modulePath, int[] shape, bool inBackward, float value)
    {
        string where = modulePath == null ? "" : $" in module '{modulePath}'";
        string what = float.IsNaN(value) ? "NaN" : value > 0 ? "Inf" : "-Inf";
        string tensor = inBackward ? "an input gradient" : "its output";
        string pass = inBackward ? "backward" : "forward";
        return $"op {opName}{where} produced {what} in {tensor} of shape ({string.Join(", ", shape)}) during the {pass} pass";
    }
}

/// <summary>
/// The sub-modules running on this thread, outermost first, as the names their parents registered them under.
/// <see cref="NN.Module"/> pushes a child's name while the child runs; anomaly mode reads the dotted path.
/// </summary>
internal static class ModuleContext
{
    [ThreadStatic] private static List<string>? _names;
    [ThreadStatic] private static string? _path;

    internal static void Push(string name)
    {
        (_names ??= new List<string>()).Add(name);
        _path = null;
    }

    internal static void Pop()
    {
        _names!.RemoveAt(_names.Count - 1);
        _path = null;
    }

    /// <summary>"h.3.mlp.c_fc", or null outside any sub-module.</summary>
    internal static string? CurrentPath =>
        _names is not { Count: > 0 } ? null : _path ??= string.Join(".", _names);
}
