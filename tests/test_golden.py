"""Golden values: frozen outputs, final states and gradients of fixed weights on a fixed input.

Elsewhere the engine is checked against the reference loop, and both against torch.nn; here their
numbers are pinned down on their own, so a change that moves them (a swapped gate, a wrong derivative
in the C++ loops or in their PyTorch fallback, a merge applied to the wrong half, a reverse pass
reading the wrong steps) fails even where an oracle would move with it. Every path reproduces the
same table, in float32 and float64:

* ``reference``: ``rnnkit.loop.recur`` over the cells' own steps (``backend="reference"``);
* ``engine-cpp``: the compiled engine (``backend="engine"``);
* ``engine-python``: the engine's PyTorch fallback, forced the documented way (``RNNKIT_ENGINE=python``);
* ``builtin``: torch's own kernels, an independent witness that the frozen numbers are right.

Weights, inputs and initial states follow a deterministic sawtooth (``pattern``) whose values differ
between gate rows, so swapping two gates changes the numbers. The 1-unit, 2-step cases are worked out
with ``math`` in the test itself: the cells' equations written out, and their gradients by central
differences. The tables (at the end) come from ``python tests/test_golden.py`` (float64, reference
backend), and torch's kernels reproduce them; regenerate them only for an intended change of the
numbers, and say why in the commit.
"""

from __future__ import annotations

import math
import textwrap

import pytest
import torch

import rnnkit as rk
from rnnkit import engine
from rnnkit.engine import _build, python_engine

INPUT, HIDDEN, STEPS, BATCH = 2, 2, 3, 2
KINDS = {
    "lstm": (rk.LSTM, {}),
    "gru": (rk.GRU, {}),
    "rnn_tanh": (rk.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (rk.RNN, {"nonlinearity": "relu"}),
}
PATHS = ["reference", "engine-cpp", "engine-python", "builtin"]
DTYPES = [torch.float32, torch.float64]
# Tables hold 12 significant digits; float32 carries about 7.
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


def pattern(n: int, start: int, scale: float = 1.0) -> torch.Tensor:
    """``n`` float64 values in ``[-scale, scale]``: a sawtooth of period 13 beginning at ``start``."""
    k = torch.arange(start, start + n, dtype=torch.float64)
    return scale * ((k * 5) % 13 - 6) / 6


def make_layer(kind: str, backend: str, dtype, input_size=INPUT, hidden_size=HIDDEN, **options):
    cls, extra = KINDS[kind]
    layer = cls(input_size, hidden_size, **extra, **options, backend=backend, dtype=dtype)
    with torch.no_grad():
        for index, param in enumerate(layer.parameters()):  # registration order: w_ih, w_hh, b_ih, b_hh, ...
            param.copy_(pattern(param.numel(), 4 * index + 6, 0.5).view_as(param))
    return layer


def run(layer, dtype, steps=STEPS, batch=BATCH, lengths=None):
    """Forward and backward on the fixed input from a fixed state; every result and gradient, by name."""
    x = pattern(steps * batch * layer.input_size, 102).view(steps, batch, -1).to(dtype).requires_grad_()
    shape = (layer.num_layers * layer.num_directions, batch, layer.hidden_size)
    states = [pattern(math.prod(shape), 200 + 7 * k, 0.8).view(shape).to(dtype).requires_grad_()
              for k in range(layer.cell_type.num_states)]
    output, final = layer(x, tuple(states) if len(states) == 2 else states[0], lengths=lengths)
    results = {"output": output, **dict(zip(("h_n", "c_n"), final if isinstance(final, tuple) else (final,)))}
    # A loss that weighs every output and final-state entry differently.
    loss = sum((r * pattern(r.numel(), 300 + 3 * i).view_as(r).to(dtype)).sum()
               for i, r in enumerate(results.values()))
    names, params = zip(*layer.named_parameters())
    grads = torch.autograd.grad(loss, [x, *states, *params])
    results.update(zip(("grad x", "grad h_0", "grad c_0")[: 1 + len(states)], grads))
    results.update((f"grad {name}", grad) for name, grad in zip(names, grads[1 + len(states):]))
    return {name: t.detach() for name, t in results.items()}


def fingerprint(t: torch.Tensor) -> torch.Tensor:
    """One number that changes if any entry does (strictly increasing weights, so also under a swap)."""
    return (t.double().flatten() * torch.linspace(1, 2, t.numel(), dtype=torch.float64)).sum()


@pytest.fixture
def use(monkeypatch):
    """``use(path)``: make ``path`` the one that runs, return the ``backend=`` to build layers with."""

    def select(path: str) -> str:
        if path == "engine-cpp":
            compiled = engine.implementation("cpp")  # raises if the C++ engine cannot be built here
            monkeypatch.setattr(engine, "implementation", lambda kind="auto": compiled)
        elif path == "engine-python":
            monkeypatch.setattr(_build, "_state", {})
            monkeypatch.setenv("RNNKIT_ENGINE", "python")
            assert engine.implementation() is python_engine
        return path.split("-")[0]

    return select


def check(got: dict, golden: dict, dtype) -> None:
    assert {name.removeprefix("sum ") for name in golden} == set(got)  # every result is checked
    tol = TOLERANCE[dtype]
    for name, expected in golden.items():
        if name.startswith("sum "):  # a fingerprint of the tensor named after it
            actual = fingerprint(got[name[4:]]).view(1)
            expected, tol = [expected], tol * 4  # a sum of a few dozen float32 entries
        else:
            actual = got[name].double().flatten()
        torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float64), atol=tol, rtol=tol,
                                   msg=lambda m, n=name: f"{n}: {m}")


# --- one layer, one direction, every cell --------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_cell_layer_matches_golden_values(kind, path, dtype, use):
    got = run(make_layer(kind, use(path), dtype), dtype)
    check(got, GOLDEN_CELLS[kind], dtype)


# --- two bidirectional layers with each merge, variable lengths --------------------------------------------

LENGTHS = torch.tensor([2, 3])
MERGES = [("gru", "concat"), ("gru", "sum"), ("gru", "mean"), ("gru", "mul"), ("lstm", "sum")]


def bidirectional(kind, merge, backend, dtype):
    return make_layer(kind, backend, dtype, num_layers=2, bidirectional=True, merge=merge)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind,merge", MERGES, ids=[f"{k}-{m}" for k, m in MERGES])
def test_bidirectional_merge_matches_golden_values(kind, merge, path, dtype, use):
    got = run(bidirectional(kind, merge, use(path), dtype), dtype, lengths=LENGTHS)
    assert torch.all(got["output"][2, 0] == 0)  # past the first sequence's length
    check(got, GOLDEN_MERGES[f"{kind}-{merge}"], dtype)


# --- 1-unit cells for two steps, worked out with math --------------------------------------------------


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def by_hand(kind: str, xs: list[float], state: list[float], w_ih, w_hh, b_ih, b_hh):
    """The cell's equations for one unit, in torch.nn's gate order: ``(outputs, final state)`` as floats."""
    h, c = state[0], state[1] if kind == "lstm" else None
    outputs = []
    for x in xs:
        pre = [w_ih[k] * x + b_ih[k] + w_hh[k] * h + b_hh[k] for k in range(len(w_ih))]
        if kind == "lstm":  # rows i, f, g, o
            i, f, g, o = sigmoid(pre[0]), sigmoid(pre[1]), math.tanh(pre[2]), sigmoid(pre[3])
            c = f * c + i * g
            h = o * math.tanh(c)
        elif kind == "gru":  # rows r, z, n; the reset gate scales W_hn h + b_hn
            r, z = sigmoid(pre[0]), sigmoid(pre[1])
            n = math.tanh(w_ih[2] * x + b_ih[2] + r * (w_hh[2] * h + b_hh[2]))
            h = (1 - z) * n + z * h
        else:
            h = math.tanh(pre[0]) if kind == "rnn_tanh" else max(pre[0], 0.0)
        outputs.append(h)
    return outputs, [h, c] if kind == "lstm" else [h]


def hand_loss(kind, values: list[float], sizes: list[int]) -> float:
    """The loss ``run`` takes, over the flat list ``values`` = x, state, then each parameter."""
    parts, start = [], 0
    for size in sizes:
        parts.append(values[start:start + size])
        start += size
    xs, state, *params = parts
    outputs, final = by_hand(kind, xs, state, *params)
    loss = sum(a * v for a, v in zip(pattern(len(outputs), 300).tolist(), outputs))
    return loss + sum(pattern(1, 303 + 3 * i).item() * v for i, v in enumerate(final))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_one_unit_two_steps_match_the_equations_by_hand(kind, path, dtype, use):
    layer = make_layer(kind, use(path), dtype, input_size=1, hidden_size=1)
    got = run(layer, dtype, steps=2, batch=1)
    xs = pattern(2, 102).tolist()
    state = [pattern(1, 200 + 7 * k, 0.8).item() for k in range(layer.cell_type.num_states)]
    params = [p.detach().double().flatten().tolist() for p in layer.parameters()]
    outputs, final = by_hand(kind, xs, state, *params)
    tol = TOLERANCE[dtype] if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(got["output"].double().flatten().tolist(), outputs, atol=tol, rtol=tol)
    finals = [got[name].item() for name in ("h_n", "c_n")[: len(final)]]
    torch.testing.assert_close(finals, final, atol=tol, rtol=tol)

    # Gradients by central differences of the hand-written loss.
    values = [*xs, *state, *(v for p in params for v in p)]
    sizes = [len(xs), len(state), *(len(p) for p in params)]
    step = 1e-6
    numeric = []
    for index in range(len(values)):
        up, down = list(values), list(values)
        up[index] += step
        down[index] -= step
        numeric.append((hand_loss(kind, up, sizes) - hand_loss(kind, down, sizes)) / (2 * step))
    names = ["grad x", "grad h_0", "grad c_0"][: 1 + len(state)]
    names += [f"grad {name}" for name, _ in layer.named_parameters()]
    analytic = [v for name in names for v in got[name].double().flatten().tolist()]
    tol = TOLERANCE[dtype] if dtype == torch.float32 else 1e-8
    torch.testing.assert_close(analytic, numeric, atol=tol, rtol=tol)


# --- regenerating the tables ------------------------------------------------------------------------


def _tables() -> str:
    """The golden tables as Python source, computed in float64 on the reference backend."""

    def flat(t):
        numbers = ", ".join(repr(float(f"{v:.12g}")) for v in t.double().flatten().tolist())
        if len(numbers) <= 80:
            return f"[{numbers}]"
        wrapped = textwrap.fill(numbers, 110, initial_indent=" " * 12, subsequent_indent=" " * 12)
        return f"[\n{wrapped},\n        ]"

    lines = ["GOLDEN_CELLS = {"]
    for kind in KINDS:
        got = run(make_layer(kind, "reference", torch.float64), torch.float64)
        lines.append(f"    {kind!r}: {{")
        lines += [f"        {name!r}: {flat(t)}," for name, t in got.items()]
        lines.append("    },")
    lines += ["}", "", "GOLDEN_MERGES = {"]
    for kind, merge in MERGES:
        got = run(bidirectional(kind, merge, "reference", torch.float64), torch.float64, lengths=LENGTHS)
        lines.append(f"    '{kind}-{merge}': {{")
        for name, t in got.items():
            if name.startswith("grad weight") or name.startswith("grad bias"):
                lines.append(f"        'sum {name}': {float(f'{fingerprint(t).item():.12g}')},")
            else:
                lines.append(f"        {name!r}: {flat(t)},")
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines)


# --- the frozen tables (python tests/test_golden.py prints them) ------------------------------------
# Tensors are flattened; 'sum grad NAME' is fingerprint(grad NAME).

GOLDEN_CELLS = {
    'lstm': {
        'output': [
            0.23517958179, 0.0575611468779, 0.132649052991, 0.213983794496, 0.320569218062, 0.0514645963984,
            0.28673620985, 0.111188475021, 0.268123616995, 0.0966285024098, 0.234198827969, 0.15311000055,
        ],
        'h_n': [0.268123616995, 0.0966285024098, 0.234198827969, 0.15311000055],
        'c_n': [0.701149973859, 0.282310611298, 0.652530838221, 0.433763722293],
        'grad x': [
            -0.0264962917019, 0.0472465028768, -0.0212163867379, -0.0230295222013, 0.107424140913,
            0.0787870128352, 0.010623687259, 0.0310354865659, 0.0903251581306, 0.00703361197062,
            -0.249222280825, -0.0440624698736,
        ],
        'grad h_0': [0.0922256685108, -0.0489858745189, -0.0334818149656, -0.0159902403558],
        'grad c_0': [0.153325517399, 0.0331595015883, -0.0406877367934, 0.0175246233417],
        'grad weight_ih_l0': [
            0.0222063051233, 0.043926146187, -0.114444254564, -0.00559394982783, 0.0664193966894,
            -0.0207997859182, -0.0701983448737, 0.0038079563854, 0.246427565562, -0.061465869395,
            -0.491945840118, 0.0467994483705, 0.244483902692, 0.0118236292554, -0.160877032906,
            -0.014151538712,
        ],
        'grad weight_hh_l0': [
            0.0780704170893, 0.00136364398836, 0.0451161683367, 0.00439227248026, 0.0649410961176,
            -0.00049075127095, 0.00832177191097, 0.01086393099, 0.189437994731, 0.0281354765724,
            0.129588421854, 0.026795844205, -0.00624446005179, 0.0499555473043, 0.079813077826,
            -0.0265815949386,
        ],
        'grad bias_ih_l0': [
            0.169773147321, 0.129610871789, 0.196151175991, 0.0625649183091, 0.541664815947, 0.373191360132,
            0.0626420376579, 0.159183097331,
        ],
        'grad bias_hh_l0': [
            0.169773147321, 0.129610871789, 0.196151175991, 0.0625649183091, 0.541664815947, 0.373191360132,
            0.0626420376579, 0.159183097331,
        ],
    },
    'gru': {
        'output': [
            0.769419446573, 0.249804935423, 0.556785190193, 0.168070629893, 0.620679688212, 0.0094702968832,
            0.670650645857, 0.130500058868, 0.680997861968, 0.223568370609, 0.661799349473, 0.323384899971,
        ],
        'h_n': [0.680997861968, 0.223568370609, 0.661799349473, 0.323384899971],
        'grad x': [
            -0.163520689451, 0.143871433828, 0.0158693942614, -0.0798139900439, 0.0347403245493,
            0.132465186474, 0.176116188163, -0.0207514231337, -0.476349735876, 0.172899756952,
            -0.158165648788, -0.0355197620828,
        ],
        'grad h_0': [0.454420620474, 0.0242326408464, -0.295552687178, 0.0654715383975],
        'grad weight_ih_l0': [
            0.0479676586575, -0.0122312224969, -0.149670256936, 0.0445106530483, 0.0426193814113,
            -0.0910071888758, 0.147926435714, -0.0780494995243, 0.68920115056, -0.124175158039, -1.1089343036,
            0.255849423595,
        ],
        'grad weight_hh_l0': [
            0.0265020894365, 0.0135115497315, 0.140411225225, -0.0225827479768, 0.101172398602,
            0.00282777101448, -0.212874114644, 0.0315805947388, 0.156295039347, 0.128793327528,
            0.637102773794, -0.0863888314118,
        ],
        'grad bias_ih_l0': [
            0.0243211017873, 0.20514466378, 0.143779773176, -0.320172787257, 0.194713672239, 1.41629902559,
        ],
        'grad bias_hh_l0': [
            0.0243211017873, 0.20514466378, 0.143779773176, -0.320172787257, 0.0972504588056, 0.935844715901,
        ],
    },
    'rnn_tanh': {
        'output': [
            0.75450525892, 0.566033298534, 0.703905603937, 0.75450525892, 0.302035347631, -0.262113877572,
            0.631289154012, -0.161291887156, 0.657614500534, 0.451793703363, 0.695698579107, 0.604208872347,
        ],
        'h_n': [0.657614500534, 0.451793703363, 0.695698579107, 0.604208872347],
        'grad x': [
            -0.260325718083, 0.0161896325388, -0.0444758465324, -0.0914350613128, 0.227355497148,
            0.291398369412, 0.360923833312, 0.0615032840572, -0.623730848131, 0.0236476320286, -0.14879522353,
            -0.107500726464,
        ],
        'grad h_0': [0.126795772788, -0.315628788208, -0.110218747225, -0.0350840035763],
        'grad weight_ih_l0': [1.47823106682, -0.401211033885, -2.31513877443, 0.596983262654],
        'grad weight_hh_l0': [0.715240672285, 1.11650330481, -0.0874356441895, -2.09676558202],
        'grad bias_ih_l0': [0.775212521037, 0.863630925547],
        'grad bias_hh_l0': [0.775212521037, 0.863630925547],
    },
    'rnn_relu': {
        'output': [
            0.983333333333, 0.641666666667, 0.875, 0.983333333333, 0.388194444444, 0.0, 0.757638888889, 0.0,
            0.758969907407, 0.37025462963, 0.871238425926, 0.640162037037,
        ],
        'h_n': [0.758969907407, 0.37025462963, 0.871238425926, 0.640162037037],
        'grad x': [
            -0.202256944444, 0.1015625, 0.0517939814815, -0.136284722222, -0.229166666667, 0.34375,
            -0.0486111111111, 0.0729166666667, -0.791666666667, 0.0416666666667, -0.208333333333,
            -0.208333333333,
        ],
        'grad h_0': [0.223090277778, -0.263020833333, -0.211516203704, 0.0894097222222],
        'grad weight_ih_l0': [1.94618055556, -0.315393518519, -1.56076388889, 1.00868055556],
        'grad weight_hh_l0': [1.14756944444, 1.42418981481, 1.63888888889, -0.148611111111],
        'grad bias_ih_l0': [0.861111111111, 3.08333333333],
        'grad bias_hh_l0': [0.861111111111, 3.08333333333],
    },
}

GOLDEN_MERGES = {
    'gru-concat': {
        'output': [
            -0.173709485952, 0.0171678097955, 0.446631354173, 0.405037657911, 0.155790384221, -0.3111847467,
            0.420683059374, 0.309777541961, 0.076465535247, 0.0454142647732, 0.352540098617, 0.494129522531,
            0.0583451169707, -0.18646913176, 0.359212750622, 0.344022189836, 0.0, 0.0, 0.0, 0.0,
            -0.0059964198114, -0.0394498785017, 0.151843167184, 0.452589534018,
        ],
        'h_n': [
            0.620679688212, 0.0094702968832, 0.661799349473, 0.323384899971, -0.211741243689,
            -0.0223210261339, -0.19208145307, -0.168781041475, 0.076465535247, 0.0454142647732,
            -0.0059964198114, -0.0394498785017, 0.446631354173, 0.405037657911, 0.420683059374, 0.309777541961,
        ],
        'grad x': [
            -0.187655486555, -0.134422740517, 0.101165065106, 0.0302606544905, -0.145868474808,
            -0.119944730072, 0.120773260509, 0.111778071934, 0.0, 0.0, -0.099062907821, 5.44531343848e-06,
        ],
        'grad h_0': [
            -0.0044775665279, 0.058727170532, 0.0473826453919, -0.10908787373, -0.379440513428,
            0.153013525729, 0.11229041595, -0.377622933258, -0.043106384795, 0.303013531048, 0.255879776851,
            -0.158231683752, -0.456063615806, -0.0541773592928, 0.593923547464, -0.0466659177171,
        ],
        'sum grad weight_ih_l0': -0.325491959634,
        'sum grad weight_hh_l0': 1.15612726955,
        'sum grad bias_ih_l0': 2.39114122347,
        'sum grad bias_hh_l0': 1.42657534186,
        'sum grad weight_ih_l0_reverse': 0.273675057383,
        'sum grad weight_hh_l0_reverse': 0.112018165556,
        'sum grad bias_ih_l0_reverse': -1.75444252211,
        'sum grad bias_hh_l0_reverse': -1.1432518633,
        'sum grad weight_ih_l1': -0.715592846362,
        'sum grad weight_hh_l1': 0.134404967444,
        'sum grad bias_ih_l1': -1.23101972346,
        'sum grad bias_hh_l1': -0.870744671522,
        'sum grad weight_ih_l1_reverse': -0.75017884351,
        'sum grad weight_hh_l1_reverse': -0.631152586578,
        'sum grad bias_ih_l1_reverse': -1.29411004006,
        'sum grad bias_hh_l1_reverse': -0.719359380352,
    },
    'gru-sum': {
        'output': [
            0.188147498689, 0.259636666215, 0.536880324347, -0.078205185116, 0.21171043666, 0.436905904712,
            0.398723657319, 0.082857941595, 0.0, 0.0, 0.0250000800739, 0.187937992872,
        ],
        'h_n': [
            0.620679688212, 0.0094702968832, 0.661799349473, 0.323384899971, -0.211741243689,
            -0.0223210261339, -0.19208145307, -0.168781041475, -0.108385636456, 0.0766619774143,
            -0.0732120463055, -0.081782814731, 0.378915692077, 0.238265623487, 0.366072431994, 0.279098956664,
        ],
        'grad x': [
            0.00506956418421, -0.166455431442, -0.0273649085649, 0.0902579813922, -0.101340792082,
            0.0617414244652, 0.00851502182117, 0.14874134595, 0.0, 0.0, -0.173297390358, 0.0288299600281,
        ],
        'grad h_0': [
            0.151875434347, -0.0266584115942, 0.0237747456272, 0.0291250129928, -0.0569496424915,
            -0.538524919699, 0.0453930766012, 0.131238296864, 0.0370704574337, 0.0196024431868,
            -0.234367911646, 0.00892032987181, 0.217701452911, 0.0396567524997, -0.0719932941151,
            0.0103080281229,
        ],
        'sum grad weight_ih_l0': -0.174171701076,
        'sum grad weight_hh_l0': 0.953425447292,
        'sum grad bias_ih_l0': 1.87622760104,
        'sum grad bias_hh_l0': 1.14538731327,
        'sum grad weight_ih_l0_reverse': 0.127382519735,
        'sum grad weight_hh_l0_reverse': -0.451869514043,
        'sum grad bias_ih_l0_reverse': -0.803820874822,
        'sum grad bias_hh_l0_reverse': -0.601389838009,
        'sum grad weight_ih_l1': 0.329307514664,
        'sum grad weight_hh_l1': -0.167454162865,
        'sum grad bias_ih_l1': 0.138195312133,
        'sum grad bias_hh_l1': 0.0895090975848,
        'sum grad weight_ih_l1_reverse': 0.170854326941,
        'sum grad weight_hh_l1_reverse': 0.210981668356,
        'sum grad bias_ih_l1_reverse': 0.202141782702,
        'sum grad bias_hh_l1_reverse': 0.175636526623,
    },
    'gru-mean': {
        'output': [
            0.0538612712076, 0.140605738185, 0.225477758958, -0.0437808103449, 0.0914335013173,
            0.225806613166, 0.141837750516, 0.0416933962929, 0.0, 0.0, 0.0085747718736, 0.107849987998,
        ],
        'h_n': [
            0.620679688212, 0.0094702968832, 0.661799349473, 0.323384899971, -0.211741243689,
            -0.0223210261339, -0.19208145307, -0.168781041475, -0.112810521996, 0.0588597403292,
            -0.0700683568551, -0.0869492060765, 0.328475959166, 0.265847226264, 0.295779619225, 0.261361878594,
        ],
        'grad x': [
            -0.0777193552041, -0.129025431075, 1.69477460478e-06, 0.0682761872705, -0.135775435791,
            -0.0292606227288, 0.0366791367898, 0.125488731615, 0.0, 0.0, -0.120333077856, 0.0272033174369,
        ],
        'grad h_0': [
            0.115241216728, 0.00854638482205, 0.0194371073575, 0.00699249043136, -0.208549807617,
            -0.200403708382, 0.0918034637605, 0.0121775119253, 0.0524954911099, -0.121365485088,
            -0.152568857844, 0.055007943463, 0.0580717815146, -0.00202129592468, -0.011428366234,
            0.0278536738059,
        ],
        'sum grad weight_ih_l0': -0.240680844424,
        'sum grad weight_hh_l0': 1.048873257,
        'sum grad bias_ih_l0': 2.09644500775,
        'sum grad bias_hh_l0': 1.25193282752,
        'sum grad weight_ih_l0_reverse': 0.237269589748,
        'sum grad weight_hh_l0_reverse': -0.246385371109,
        'sum grad bias_ih_l0_reverse': -0.773215694834,
        'sum grad bias_hh_l0_reverse': -0.534186870291,
        'sum grad weight_ih_l1': 0.0432936028515,
        'sum grad weight_hh_l1': -0.0924479887639,
        'sum grad bias_ih_l1': -0.0140869313325,
        'sum grad bias_hh_l1': 0.0303262011868,
        'sum grad weight_ih_l1_reverse': 0.0536459215661,
        'sum grad weight_hh_l1_reverse': 0.0854566186117,
        'sum grad bias_ih_l1_reverse': 0.324543590931,
        'sum grad bias_hh_l1_reverse': 0.223440260233,
    },
    'gru-mul': {
        'output': [
            -0.0633088643349, 0.00342262359334, 0.0259777153303, -0.0843424114064, -0.0360978263805,
            0.0190994196049, -0.00289972749194, -0.0533360166674, 0.0, 0.0, -0.000928938502955,
            -0.028903368317,
        ],
        'h_n': [
            0.620679688212, 0.0094702968832, 0.661799349473, 0.323384899971, -0.211741243689,
            -0.0223210261339, -0.19208145307, -0.168781041475, -0.155133852964, 0.0459865707506,
            -0.0991053872757, -0.0915099932936, 0.22027283619, 0.282204380363, 0.185818453067, 0.24721468408,
        ],
        'grad x': [
            -0.116243953172, -0.11252337557, 0.0159008931588, 0.0463571283864, -0.143049482074,
            -0.0644589470562, 0.0560181956571, 0.126254468997, 0.0, 0.0, -0.0911959929237, 0.026024331458,
        ],
        'grad h_0': [
            0.127857294725, 0.021985328108, -0.0409326206171, 0.00745469283179, -0.267036956939,
            -0.0370121391211, 0.124190790007, -0.0302703020615, 0.0707050465394, -0.163794147402,
            -0.0961393485574, 0.059375999141, -0.158250770916, -0.0671295849285, 0.0547453698023,
            0.0567393022045,
        ],
        'sum grad weight_ih_l0': -0.16077529256,
        'sum grad weight_hh_l0': 1.08109130182,
        'sum grad bias_ih_l0': 2.07059724811,
        'sum grad bias_hh_l0': 1.22170852301,
        'sum grad weight_ih_l0_reverse': 0.269487347522,
        'sum grad weight_hh_l0_reverse': -0.156300742147,
        'sum grad bias_ih_l0_reverse': -0.658884327783,
        'sum grad bias_hh_l0_reverse': -0.446995837013,
        'sum grad weight_ih_l1': -0.0403749423099,
        'sum grad weight_hh_l1': -0.0460021921355,
        'sum grad bias_ih_l1': -0.0322801983131,
        'sum grad bias_hh_l1': 0.0465684735374,
        'sum grad weight_ih_l1_reverse': -0.0197998184032,
        'sum grad weight_hh_l1_reverse': -0.190836949033,
        'sum grad bias_ih_l1_reverse': 0.34608353144,
        'sum grad bias_hh_l1_reverse': 0.19790969939,
    },
    'lstm-sum': {
        'output': [
            0.274770315328, -0.101657186915, 0.180950624106, 0.142918953003, 0.182333896644, -0.094807298983,
            0.215421451408, 0.0957159427206, 0.0, 0.0, 0.107388621159, 0.0252568119925,
        ],
        'h_n': [
            0.320569218062, 0.0514645963984, 0.234198827969, 0.15311000055, -0.188306048755, -0.148000731411,
            0.0251084189373, -0.11800178009, 0.0722473828168, -0.165183079983, 0.0539774514035,
            -0.0288205953958, 0.173061690523, 0.0717347018036, 0.210061725141, 0.0469820365969,
        ],
        'c_n': [
            0.57804200669, 0.0962680910782, 0.652530838221, 0.433763722293, -0.299976048288, -0.352909004854,
            0.0359785631052, -0.29282780567, 0.179843230995, -0.298040673446, 0.148534968965,
            -0.0528575923622, 0.376230173637, 0.176179590481, 0.4441095996, 0.114868192907,
        ],
        'grad x': [
            -0.0574361787657, -0.206843480091, 0.021730463596, -0.124419998293, 0.104589275358,
            0.0174235022453, -0.04777015146, -0.111803066906, 0.0, 0.0, -0.225858851569, -0.0528315575419,
        ],
        'grad h_0': [
            0.017751517789, 0.067070774457, -0.00759782487729, -0.0255621345005, 0.0130403804904,
            0.0535473834267, 0.0448890072489, -0.0354701160995, -0.015770232007, 0.0321017261376,
            -0.075134200298, -0.00758583324354, -0.0150821751378, 0.0104261538543, 0.0318531095355,
            -0.0494283818407,
        ],
        'grad c_0': [
            0.149742363987, -0.103132044487, -0.0153186608283, 0.051301838651, -0.256727946781,
            -0.143999061053, -0.120880218171, 0.0437454476961, 0.161359464862, -0.213770289815,
            -0.165706450773, 0.225169997278, 0.018784547422, 0.0548296528471, -0.0831830500344,
            -0.00910769297585,
        ],
        'sum grad weight_ih_l0': -0.581854485398,
        'sum grad weight_hh_l0': 0.639699993548,
        'sum grad bias_ih_l0': 1.93240620754,
        'sum grad bias_hh_l0': 1.93240620754,
        'sum grad weight_ih_l0_reverse': 0.181746972666,
        'sum grad weight_hh_l0_reverse': -0.0215978740112,
        'sum grad bias_ih_l0_reverse': -1.41642286794,
        'sum grad bias_hh_l0_reverse': -1.41642286794,
        'sum grad weight_ih_l1': 0.600023394825,
        'sum grad weight_hh_l1': -0.180998379758,
        'sum grad bias_ih_l1': 2.34590536849,
        'sum grad bias_hh_l1': 2.34590536849,
        'sum grad weight_ih_l1_reverse': -0.439300446054,
        'sum grad weight_hh_l1_reverse': 0.0177045945914,
        'sum grad bias_ih_l1_reverse': -0.925557112457,
        'sum grad bias_hh_l1_reverse': -0.925557112457,
    },
}

if __name__ == "__main__":
    print(_tables())
