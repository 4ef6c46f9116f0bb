# The paper's figures: the sweeps of Figure 3 (C, α, τ), Figure 4's scoring time, Figure 5's rankings.


rule sweep:
    input:
        features=features_of(config["sweeps"]["protocol"]),
        scores=scores_of(SWEEP_SETTING, config["sweeps"]["protocol"]),
    output:
        csv="sweeps/{param}.csv",
        png=report(
            "sweeps/{param}.png",
            caption="../report/sweep.rst",
            category="Figure 3 (sweeps)",
            labels={"parameter": "{param}"},
        ),
    log:
        "logs/sweeps/{param}.log",
    benchmark:
        "benchmarks/sweeps/{param}.tsv"
    wildcard_constraints:
        param="C|alpha|tau",
    group:
        "tail"
    conda:
        "../envs/muse.yaml"
    params:
        sweeps=config["sweeps"],
        fusion=fusion_of(SWEEP_SETTING),
        rerank=config["rerank"],
        intervals=config["intervals"],
    script:
        "../scripts/sweep.py"


rule fig4_timing:
    input:
        model=mllm_dir(JUDGE),
    output:
        png=report("results/figures/fig4_timing.png", caption="../report/fig4.rst", category="Figures"),
        json="results/figures/fig4_timing.json",
    log:
        "logs/figures/fig4_timing.log",
    benchmark:
        "benchmarks/figures/fig4_timing.tsv"
    conda:
        "../envs/muse.yaml"
    resources:
        gpu=config["gpu"],
    params:
        C=config["muse"]["C"],
        batch=config["mllm"]["score"]["batch"],
    script:
        "../scripts/fig4_timing.py"


rule fig5_ranking:
    input:
        features=features_of(config["figure5"]["protocol"]),
        scores=scores_of(SWEEP_SETTING, config["figure5"]["protocol"]),
    output:
        report("results/figures/fig5_ranking.png", caption="../report/fig5.rst", category="Figures"),
    log:
        "logs/figures/fig5_ranking.log",
    benchmark:
        "benchmarks/figures/fig5_ranking.tsv"
    group:
        "tail"
    conda:
        "../envs/muse.yaml"
    params:
        sweeps=config["sweeps"],
        fusion=fusion_of(SWEEP_SETTING),
        rerank=config["rerank"],
        figure5=config["figure5"],
    script:
        "../scripts/fig5_ranking.py"
