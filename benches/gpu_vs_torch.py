"""The PyTorch side of `peftc gpu-check`'s bench (scripts/gpu-check.sh runs both): LoRA and QLoRA
training steps on the GPU with transformers + PEFT (+ bitsandbytes for NF4), on the model folder
`peftc gpu-check --bench DIR` wrote (same weights, same shapes), one JSON line per case.

Cases, as on the peftc side: `lora_bf16` (bf16 base, LoRA r 16 / alpha 32 on every linear layer,
AdamW lr 1e-2) and `qlora_nf4_bf16` (base loaded through bitsandbytes NF4 with double quantization
and bf16 compute; LoRA as above). `batch x seq` random tokens per step, labels = inputs; median
step time of STEPS after 2 warm-up steps; tokens/s; peak device memory in use (total - free,
sampled every 2 ms by a thread, as peftc samples it; includes the CUDA context) and PyTorch's
own `max_memory_allocated`. transformers' default attention (sdpa), no gradient checkpointing.

    python benches/gpu_vs_torch.py --model DIR --batch 8 --seq 1024 --steps 10
"""

import argparse
import json
import statistics
import threading
import time

import torch


def peak_sampler(stop, out):
    peak = 0
    while not stop.is_set():
        free, total = torch.cuda.mem_get_info()
        peak = max(peak, total - free)
        time.sleep(0.002)
    out.append(peak)


def run(case, args):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    stop, peak = threading.Event(), []
    sampler = threading.Thread(target=peak_sampler, args=(stop, peak))
    sampler.start()
    kwargs = {"dtype": torch.bfloat16, "device_map": {"": 0}}
    if case == "qlora_nf4_bf16":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    model = AutoModelForCausalLM.from_pretrained(args.model, **kwargs)
    model.config.use_cache = False
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear")
    model = get_peft_model(model, lora)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    vocab = model.config.vocab_size
    g = torch.Generator(device="cpu").manual_seed(3)
    times = []
    for step in range(args.steps + 2):
        ids = torch.randint(0, vocab, (args.batch, args.seq), generator=g).cuda()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step >= 2:
            times.append(time.perf_counter() - t0)
    stop.set()
    sampler.join()
    median = statistics.median(times)
    print(
        json.dumps(
            {
                "side": "pytorch+peft" + ("+bitsandbytes" if case.startswith("qlora") else ""),
                "case": case,
                "batch": args.batch,
                "seq": args.seq,
                "median_step_s": median,
                "tokens_per_s": args.batch * args.seq / median,
                "peak_device_mib": peak[0] // (1 << 20),
                "torch_max_allocated_mib": torch.cuda.max_memory_allocated() // (1 << 20),
            }
        ),
        flush=True,
    )
    del model, opt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--cases", default="lora_bf16,qlora_nf4_bf16")
    args = ap.parse_args()
    for case in args.cases.split(","):
        run(case, args)


if __name__ == "__main__":
    main()
