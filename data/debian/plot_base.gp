# The base model's pretraining: training loss (mean over 25 steps) and held-out
# loss vs step, from data/debian/base_card.py's base-loss.dat:
#   gnuplot -e "dat='runs/debian/base-loss.dat'; out='runs/debian/base-loss.png'" data/debian/plot_base.gp
if (!exists("dat")) dat = 'runs/debian/base-loss.dat'
if (!exists("out")) out = 'runs/debian/base-loss.png'
set terminal pngcairo size 900,520 noenhanced
set output out
set title "Base model (12.9 M parameters, Mistral tokenizer): pretraining on the Debian corpus"
set xlabel "step (64 documents packed into 512-token sequences)"
set ylabel "loss (nats per token)"
set key right top
set grid
set logscale y
set yrange [2:12]
set ytics (2, 2.5, 3, 4, 5, 6, 8, 10, 12)
set datafile commentschars "#"
plot dat index 0 using 1:2 with lines lw 2 title "training loss (mean over 25 steps)", \
     dat index 1 using 1:2 with linespoints lw 2 pt 7 title "held-out loss (600 pieces, mean of their NLL)"
