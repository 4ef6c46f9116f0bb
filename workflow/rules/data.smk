# Data: the synthetic world (embedded default) and the manifests of all four domains.


rule synth_world:
    output:
        directory("data/synthetic/{domain}"),
    log:
        "logs/data/synth_world_{domain}.log",
    benchmark:
        "benchmarks/data/synth_world_{domain}.tsv"
    group:
        "data"
    conda:
        "../envs/muse.yaml"
    params:
        sizes=lambda w: config["world"]["domains"][w.domain],
        seed=config["world"]["seed"],
    script:
        "../scripts/synth_world.py"


rule manifest:
    input:
        root=dataset_root,
    output:
        "results/data/{domain}.csv",
    log:
        "logs/data/manifest_{domain}.log",
    benchmark:
        "benchmarks/data/manifest_{domain}.tsv"
    group:
        "data"
    conda:
        "../envs/muse.yaml"
    params:
        dataset=lambda w: config["datasets"][w.domain],
        check=config["check_images"],
    script:
        "../scripts/manifest.py"


rule train_set:
    input:
        lambda w: expand("results/data/{domain}.csv", domain=w.src.split("+")),
    output:
        "results/data/train_{src}.csv",
    log:
        "logs/data/train_set_{src}.log",
    benchmark:
        "benchmarks/data/train_set_{src}.tsv"
    group:
        "data"
    conda:
        "../envs/muse.yaml"
    script:
        "../scripts/train_set.py"
