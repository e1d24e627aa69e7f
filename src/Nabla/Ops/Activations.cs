using System.Numerics.Tensors;
using Nabla.Kernels;
using Nabla.Kernels.Cpu;
using Nabla.Kernels.Reference;

namespace Nabla
{
    /// <summary>Which GELU: the exact one (x·Φ(x)) or GPT-2's tanh approximation.</summary>
    public enum GeluApproximation
    {
        None,
        Tanh,
    }

    // Activation functions: each is one struct below (spec, derivative, vector form), which every kernel backend
    // runs as it is; these methods apply them, with their backward.
    public sealed partial class Tensor
    {
        public Tensor Relu() => Unary<Functions.Relu>();
        public Tensor LeakyRelu(float negativeSlope = 0.01f) => Unary<Functions.LeakyRelu>(negativeSlope);
        public Tensor Gelu(GeluApproximation approximate = GeluApproximation.None) =>
            approximate == GeluApproximation.Tanh ? Unary<Functions.GeluTanh>() : Unary<Functions.GeluExact>();
        public Tensor Silu() => Unary<Functions.Silu>();
        public Tensor Sigmoid() => Unary<Functions.Sigmoid>();
        public Tensor Tanh() => Unary<Functions.Tanh>();
        public Tensor Softplus() => Unary<Functions.Softplus>();
    }
}

namespace Nabla.Functions
{
    public struct Relu : IUnaryFunction
    {
        public static string Name => "Relu";
        public static double Forward(double x, double alpha) => x > 0 || double.IsNaN(x) ? x : 0;
        public static double Derivative(double x, double y, double alpha) => x > 0 ? 1 : 0;
        public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => V.Select(V.Greater(x, V.Splat(0f)), x, V.Select(V.Equal(x, x), V.Splat(0f), x));
        public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => V.Select(V.Greater(x, V.Splat(0f)), dy, V.Splat(0f));
    }

    /// <summary>x if x &gt; 0 else alpha · x.</summary>
    public struct LeakyRelu : IUnaryFunction
    {
        public static string Name => "LeakyRelu";
        public static double Forward(double x, double alpha) => x > 0 ? x : alpha * x;
        public static double Derivative(double x, double y, double alpha) => x > 0 ? 1 : alpha;
        public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => V.Select(V.Greater(x, V.Splat(0f)), x, x * alpha);
        public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => V.Select(V.Greater(x, V.Splat(0f)), dy, dy * alpha);
    }

    public struct Sigmoid : IUnaryFunction
    {
        public static string Name => "Sigmoid";
        public static double Forward(double x, double alpha) => 1 / (1 + Math.Exp(-x));
        public static double Derivative(double x, double y, double alpha) => y * (1 - y);
        public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => VectorMath.Sigmoid(x);
        public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => dy * y * (V.Splat(1f) - y);
    }

    public struct Tanh : IUnaryFunction
    {
        public static string Name => "Tanh";
        public static double Forward(double x, double alpha) => Math.Tanh(x);
        public static double Derivative(double x, double y, double alpha) => 1 - y * y;
        public static bool TryForwardSpan(ReadOnlySpan<float> x, float alpha, Span<float> y) { TensorPrimitives.Tanh(x, y); return true; }

        public static V Forward<V>(V x, V alpha) where V : struct, IVec<V>
        {
            // tanh(x) = sign(x)·(1 - 2/(exp(2|x|)+1)) (the CPU backend runs TensorPrimitives.Tanh, accurate near 0).
            var ax = V.Abs(x);
            var t = V.Splat(1f) - V.Splat(2f) / (V.Exp(ax + ax) + V.Splat(1f));
            return V.Select(V.Less(x, V.Splat(0f)), -t, t);
        }

        public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => dy * (V.Splat(1f) - y * y);
    }

    /// <summary>x · Φ(x), with the exact normal CDF.</summary>
    public struct GeluExact : IUnaryFunction
    {
        public static string Name => "GeluExact";
        public static double Forward(double x, double alpha) => x * ScalarMath.NormalCdf(x);
        public static double Derivative(double x, double y, double alpha) => ScalarMath.NormalCdf(x) + x * ScalarMath.InvSqrtTwoPi * Math.Exp(-0.5 * x * x);
        public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => x * VectorMath.NormalCdf(x);

        public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V>
        {
            // d/dx x·Φ(x) = Φ(x) + x·φ(x)
            var pdf = V.Splat((float)ScalarMath.InvSqrtTwoPi) * V.Exp(V.Splat(-0.5f) * x * x);
            return dy * V.Fma(x, pdf, VectorMath.NormalCdf(x));
        }
    }

    /// <summary>GPT-2's approximation 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))).</summary>
    public struct GeluTanh : IUnaryFunction
    {
        public static string Name => "GeluTanh";
        public static double Forward(double x, double alpha) => 0.5 * x * (1 + Math.Tanh(ScalarMath.SqrtTwoOverPi * (x + ScalarMath.GeluTanhCoefficient * x * x * x)));

        public static double Derivative(double x, double y, double alpha)
        {
            double t = Math.Tanh(ScalarMath.SqrtTwoOverPi * (x + ScalarMath.GeluTanhCoefficient * x * x * x));
            double du = ScalarMath.SqrtTwoOverPi * (1 + 3 * ScalarMath.GeluTanhCoefficient * x * x);
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du;
        }

        // 0.5·x·(1 + tanh(u)) == x·sigmoid(2u): the sigmoid form has no cancellation for large negative x.
        private static V TwoU<V>(V x) where V : struct, IVec<V> =>
            V.Splat(2f * (float)ScalarMath.SqrtTwoOverPi) * V.Fma(V.Splat((float)ScalarMath.GeluTanhCoefficient), x * x * x, x);

        public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => x * VectorMath.Sigmoid(TwoU(x));

        public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V>
        {
            var s = VectorMath.Sigmoid(TwoU(x));
            var du = V.Splat((float)ScalarMath.SqrtTwoOverPi) * V.Fma(V.Splat(3f * (float)ScalarMath.GeluTanhCoefficient), x * x, V.Splat(1f));
            // s + 2·x·s·(1-s)·du
            return dy * V.Fma(V.Splat(2f) * x * s * (V.Splat(1f) - s), du, s);
        }
    }

    /// <summary>x · sigmoid(x) (also called swish).</summary>
    public struct Silu : IUnaryFunction
    {
        public static string Name => "Silu";
        public static double Forward(double x, double alpha) => x / (1 + Math.Exp(-x));

        public static double Derivative(double x, double y, double alpha)
        {
            double s = 1 / (1 + Math.Exp(-x));
            return s * (1 + x * (1 - s));
        }

        public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => x * VectorMath.Sigmoid(x);

        public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V>
        {
            var s = VectorMath.Sigmoid(x);
            return dy * s * V.Fma(x, V.Splat(1f) - s, V.Splat(1f));
        }
    }

    /// <summary>log(1 + eˣ), a smooth ReLU (the positive part of Mish, and the step size of state-space models); x itself
    /// above 20, as PyTorch's default (beta 1, threshold 20). Its derivative is sigmoid(x).</summary>
    public struct Softplus : IUnaryFunction
    {
        private const double Threshold = 20;

        public static string Name => "Softplus";
        public static double Forward(double x, double alpha) => x > Threshold ? x : Log1p(Math.Exp(x));
        public static double Derivative(double x, double y, double alpha) => x > Threshold ? 1 : 1 / (1 + Math.Exp(-x));

        /// <summary>log(1 + u) without losing a small u to the rounding of 1 + u (Goldberg's trick; .NET has no Log1p).</summary>
        private static double Log1p(double u)
        {
            double w = 1 + u;
            return w == 1 ? u : Math.Log(w) * u / (w - 1);
        }

        public static V Forward<V>(V x, V alpha) where V : struct, IVec<V>
        {
            var one = V.Splat(1f);
            var u = V.Exp(x);
            var w = one + u;
            var log1p = V.Select(V.Equal(w, one), u, V.Log(w) * u / (w - one));
            return V.Select(V.Greater(x, V.Splat((float)Threshold)), x, log1p);
        }

        public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> =>
            dy * V.Select(V.Greater(x, V.Splat((float)Threshold)), V.Splat(1f), VectorMath.Sigmoid(x));
    }
}
