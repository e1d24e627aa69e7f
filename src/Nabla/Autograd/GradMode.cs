namespace Nabla.Autograd;

/// <summary>Whether ops record themselves for backward on this thread. Turn it off for inference and for
/// optimizer updates: <c>using (GradMode.NoGrad()) { ... }</c>.</summary>
public static class GradMode
{
    [ThreadStatic] private static int _disabledDepth;

    public static bool IsEnabled => _disabledDepth == 0;

    /// <summary>A scope in which no graph is recorded (like <c>torch.no_grad()</c>).</summary>
    public static NoGradScope NoGrad()
    {
        _disabledDepth++;
        return new NoGradScope();
    }

    public readonly struct NoGradScope : IDisposable
    {
        public void Dispose() => _disabledDepth--;
    }

    /// <summary>True when grad mode is on and any of the tensors requires grad: the op must record itself.</summary>
    internal static bool Needed(Tensor a) => _disabledDepth == 0 && a.RequiresGrad;
    internal static bool Needed(Tensor a, Tensor b) => _disabledDepth == 0 && (a.RequiresGrad || b.RequiresGrad);
    internal static bool Needed(Tensor a, Tensor? b, Tensor? c) =>
        _disabledDepth == 0 && (a.RequiresGrad || (b?.RequiresGrad ?? false) || (c?.RequiresGrad ?? false));
    internal static bool Needed(IReadOnlyList<Tensor> ts)
    {
        if (_disabledDepth != 0) return false;
        foreach (var t in ts) if (t.RequiresGrad) return true;
        return false;
    }
}
