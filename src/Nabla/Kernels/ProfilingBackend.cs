using System.Diagnostics;
using System.Reflection;
using System.Reflection.Emit;

namespace Nabla.Kernels;

/// <summary>
/// Measures the time spent in each kernel of a backend, to show where a training step goes:
/// <c>var profiler = new ProfilingBackend(Backend.Current); using (Backend.Use(profiler.Timed)) { ... }
/// Console.Write(profiler.Report());</c>. Kernels are told apart by method, and by the function (for
/// <c>Unary&lt;F&gt;</c>) or the enum argument (<c>Binary(BinaryOp.Add, ...)</c>) they run.
/// <para>
/// <see cref="Timed"/> is a class generated at run time from <see cref="IKernelBackend"/> itself: each method reads the
/// clock, calls the same method of the inner backend with the same arguments, and adds the elapsed ticks to its
/// tally. So a new kernel method needs no edit here, and the cost per call is two clock reads and a dictionary
/// update — no boxing, no argument arrays (which is why not <c>DispatchProxy</c>: it cannot pass pointers or spans).
/// </para>
/// </summary>
public sealed class ProfilingBackend
{
    private static readonly Lazy<(Type Type, MethodInfo[] Kernels)> Decorator = new(BuildDecorator);

    private readonly KernelTimings _timings;

    /// <param name="inner">The backend whose kernels are timed.</param>
    /// <param name="clock">Reads the time in <see cref="Stopwatch.Frequency"/> ticks per second; the wall clock
    /// (<see cref="Stopwatch.GetTimestamp"/>) by default. A benchmark on one thread of a busy machine passes the
    /// thread's CPU clock, so that time the thread waited for a core is not charged to the kernel it was in.</param>
    public ProfilingBackend(IKernelBackend inner, Func<long>? clock = null)
    {
        ArgumentNullException.ThrowIfNull(inner);
        _timings = new KernelTimings(clock ?? Stopwatch.GetTimestamp);
        Timed = (IKernelBackend)Activator.CreateInstance(Decorator.Value.Type, inner, _timings)!;
    }

    /// <summary>The inner backend with every kernel call timed: install this one.</summary>
    public IKernelBackend Timed { get; }

    public void Reset() => _timings.Totals.Clear();

    /// <summary>Seconds spent in all kernels since the start or the last <see cref="Reset"/>.</summary>
    public double TotalSeconds => _timings.Totals.Values.Sum(t => (double)t.Ticks) / Stopwatch.Frequency;

    /// <summary>Time per kernel, largest first, with its share of the total.</summary>
    public string Report()
    {
        var totals = _timings.Totals;
        double total = totals.Values.Sum(t => t.Ticks);
        var lines = totals.OrderByDescending(kv => kv.Value.Ticks).Select(kv =>
            $"{_timings.NameOf(kv.Key, Decorator.Value.Kernels),-32} {kv.Value.Ticks * 1000.0 / Stopwatch.Frequency,10:F1} ms {100 * kv.Value.Ticks / Math.Max(total, 1),6:F1}% {kv.Value.Calls,8} calls");
        return string.Join(Environment.NewLine, lines) + Environment.NewLine;
    }

    /// <summary>
    /// The tallies the generated class writes to (public only because generated code can call nothing else). A
    /// kernel is keyed by its method's index in <see cref="IKernelBackend"/> in the high half and, in the low half,
    /// its variant: the value of its first enum argument, or the number given to its type argument.
    /// </summary>
    public sealed class KernelTimings
    {
        internal readonly Dictionary<long, (long Ticks, long Calls)> Totals = new();

        private readonly Func<long> _clock;

        internal KernelTimings(Func<long> clock) => _clock = clock;

        public long Start() => _clock();

        public void Stop(int kernel, long start) => Add((long)kernel << 32, start);

        public void Stop(int kernel, long start, int variant) => Add(((long)kernel << 32) | (uint)variant, start);

        public void Stop<TFunction>(int kernel, long start) => Add(((long)kernel << 32) | (uint)TypeNumber<TFunction>.Value, start);

        private void Add(long key, long start)
        {
            long elapsed = _clock() - start;
            Totals[key] = Totals.TryGetValue(key, out var t) ? (t.Ticks + elapsed, t.Calls + 1) : (elapsed, 1);
        }

        internal string NameOf(long key, MethodInfo[] kernels)
        {
            var method = kernels[(int)(key >> 32)];
            int variant = (int)(key & 0xffffffff);
            if (method.IsGenericMethodDefinition) return $"{method.Name} {TypeNumber.Types[variant].Name}";
            var enumParameter = method.GetParameters().FirstOrDefault(p => p.ParameterType.IsEnum);
            return enumParameter == null ? method.Name : $"{method.Name} {Enum.GetName(enumParameter.ParameterType, variant)}";
        }
    }

    /// <summary>A small number per type argument a generic kernel was called with.</summary>
    private static class TypeNumber
    {
        public static readonly List<Type> Types = [];
    }

    private static class TypeNumber<T>
    {
        public static readonly int Value = Register();

        private static int Register()
        {
            lock (TypeNumber.Types)
            {
                TypeNumber.Types.Add(typeof(T));
                return TypeNumber.Types.Count - 1;
            }
        }
    }

    /// <summary>Emits <c>sealed class TimedBackend : IKernelBackend</c> with a constructor (inner, timings) and, for every
    /// interface method, <c>long t = timings.Start(); [result =] inner.M(args); timings.Stop(index, t[, variant]); return [result];</c>.
    /// Property getters (the name) are forwarded untimed.</summary>
    private static (Type, MethodInfo[]) BuildDecorator()
    {
        var kernels = typeof(IKernelBackend).GetMethods();
        var module = AssemblyBuilder.DefineDynamicAssembly(new AssemblyName("Nabla.Profiling"), AssemblyBuilderAccess.Run)
            .DefineDynamicModule("Nabla.Profiling");
        var type = module.DefineType("Nabla.Profiling.TimedBackend", TypeAttributes.Public | TypeAttributes.Sealed | TypeAttributes.Class);
        type.AddInterfaceImplementation(typeof(IKernelBackend));
        var inner = type.DefineField("_inner", typeof(IKernelBackend), FieldAttributes.Private | FieldAttributes.InitOnly);
        var timings = type.DefineField("_timings", typeof(KernelTimings), FieldAttributes.Private | FieldAttributes.InitOnly);

        var ctor = type.DefineConstructor(MethodAttributes.Public, CallingConventions.Standard, [typeof(IKernelBackend), typeof(KernelTimings)]);
        var il = ctor.GetILGenerator();
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Call, typeof(object).GetConstructor(Type.EmptyTypes)!);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Stfld, inner);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldarg_2);
        il.Emit(OpCodes.Stfld, timings);
        il.Emit(OpCodes.Ret);

        var start = typeof(KernelTimings).GetMethod(nameof(KernelTimings.Start))!;
        var stops = typeof(KernelTimings).GetMethods().Where(m => m.Name == nameof(KernelTimings.Stop)).ToArray();
        var stop = stops.Single(m => !m.IsGenericMethodDefinition && m.GetParameters().Length == 2);
        var stopVariant = stops.Single(m => !m.IsGenericMethodDefinition && m.GetParameters().Length == 3);
        var stopGeneric = stops.Single(m => m.IsGenericMethodDefinition);

        for (int index = 0; index < kernels.Length; index++)
        {
            var kernel = kernels[index];
            var parameters = kernel.GetParameters();
            var method = type.DefineMethod(kernel.Name,
                MethodAttributes.Public | MethodAttributes.Virtual | MethodAttributes.Final | MethodAttributes.HideBySig | MethodAttributes.NewSlot,
                CallingConventions.HasThis, kernel.ReturnType, null, null,
                parameters.Select(p => p.ParameterType).ToArray(),
                parameters.Select(p => p.GetRequiredCustomModifiers()).ToArray(),
                parameters.Select(p => p.GetOptionalCustomModifiers()).ToArray());
            MethodInfo target = kernel;
            Type[] typeArguments = [];
            if (kernel.IsGenericMethodDefinition)
            {
                var definitions = kernel.GetGenericArguments();
                var builders = method.DefineGenericParameters(definitions.Select(d => d.Name).ToArray());
                for (int g = 0; g < definitions.Length; g++)
                {
                    builders[g].SetGenericParameterAttributes(definitions[g].GenericParameterAttributes);
                    var constraints = definitions[g].GetGenericParameterConstraints();
                    if (constraints.FirstOrDefault(c => !c.IsInterface) is { } baseType) builders[g].SetBaseTypeConstraint(baseType);
                    builders[g].SetInterfaceConstraints(constraints.Where(c => c.IsInterface).ToArray());
                }
                typeArguments = builders;
                target = kernel.MakeGenericMethod(builders);
            }
            for (int p = 0; p < parameters.Length; p++) method.DefineParameter(p + 1, parameters[p].Attributes, parameters[p].Name);

            il = method.GetILGenerator();
            bool timed = !kernel.IsSpecialName;
            var clock = il.DeclareLocal(typeof(long));
            var result = kernel.ReturnType == typeof(void) ? null : il.DeclareLocal(kernel.ReturnType);
            if (timed)
            {
                il.Emit(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldfld, timings);
                il.Emit(OpCodes.Call, start);
                il.Emit(OpCodes.Stloc, clock);
            }
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, inner);
            for (int p = 0; p < parameters.Length; p++) il.Emit(OpCodes.Ldarg, p + 1);
            il.Emit(OpCodes.Callvirt, target);
            if (result != null) il.Emit(OpCodes.Stloc, result);
            if (timed)
            {
                il.Emit(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldfld, timings);
                il.Emit(OpCodes.Ldc_I4, index);
                il.Emit(OpCodes.Ldloc, clock);
                int enumArgument = Array.FindIndex(parameters, p => p.ParameterType.IsEnum);
                if (typeArguments.Length > 0) il.Emit(OpCodes.Call, stopGeneric.MakeGenericMethod(typeArguments[0]));
                else if (enumArgument >= 0)
                {
                    il.Emit(OpCodes.Ldarg, enumArgument + 1);
                    il.Emit(OpCodes.Call, stopVariant);
                }
                else il.Emit(OpCodes.Call, stop);
            }
            if (result != null) il.Emit(OpCodes.Ldloc, result);
            il.Emit(OpCodes.Ret);
            type.DefineMethodOverride(method, kernel);
        }
        return (type.CreateType(), kernels);
    }
}
