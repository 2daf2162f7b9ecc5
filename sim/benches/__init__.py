"""cocotb benches, run from pytest through :func:`run_bench`."""

from pathlib import Path

from amaranth.back import verilog
from cocotb_tools.runner import get_results, get_runner

from .. import verilator

__all__ = ["run_bench"]


def run_bench(component, *, toplevel: str, module: str, work_dir: Path,
              environment: dict[str, str]) -> tuple[int, int]:
    """Convert ``component`` to Verilog, build it with Verilator and run the bench
    ``module`` (a file beside this one) on it; return (tests, failures).

    The caller must have put :func:`refmeter.sim.verilator.environment`'s variables
    in ``os.environ`` (the runner passes ``os.environ`` to Verilator and make), and
    ``environment`` holds what the bench reads. Outputs go to ``work_dir``.
    """
    source = work_dir / f"{toplevel}.v"
    source.write_text(verilog.convert(component, name=toplevel))
    build_dir = work_dir / "sim_build"
    runner = get_runner("verilator")
    runner.build(sources=[source], hdl_toplevel=toplevel, build_dir=build_dir,
                 timescale=("1ns", "1ps"), build_args=verilator.VERILATOR_FLAGS)
    # The bench is found through test_dir; the results file is named so that
    # nothing is written beside the bench.
    results = runner.test(hdl_toplevel=toplevel, hdl_toplevel_lang="verilog", test_module=module,
                          test_dir=Path(__file__).resolve().parent, build_dir=build_dir,
                          extra_env=environment, results_xml=str(work_dir / "results.xml"))
    return get_results(Path(results))
