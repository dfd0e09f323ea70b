* ota_two_stage_nulling_r: two-stage OTA (PMOS-input first stage, NMOS common-source second stage) with Miller cap and series nulling resistor
.include ../models/ptm45.lib
* ---- sizing / bias parameters (W, L per matched group) ----
.param w_in=24u l_in=180n w_ld=3u l_ld=360n w_tail=24u l_tail=360n w_bd=24u
.param w_cs=12u l_cs=360n w_src=48u l_src=360n
.param ibias=20u cc=300f rz=5k cl=500f vcm=0.35 vshift=-0.15
Vdd vdd 0 DC 1.0
* ---- bias: PMOS reference diode ----
Iref vbp 0 DC {ibias}
Mb vbp vbp vdd vdd pmos45 w={w_bd} l={l_tail}
* ---- first stage: PMOS pair, NMOS mirror load ----
M5 tail vbp vdd vdd pmos45 w={w_tail} l={l_tail}
M1 x inn tail vdd pmos45 w={w_in} l={l_in}
M2 o1 inp tail vdd pmos45 w={w_in} l={l_in}
M3 x x 0 0 nmos45 w={w_ld} l={l_ld}
M4 o1 x 0 0 nmos45 w={w_ld} l={l_ld}
* ---- second stage: NMOS common source with PMOS current source ----
M6 out o1 0 0 nmos45 w={w_cs} l={l_cs}
M7 out vbp vdd vdd pmos45 w={w_src} l={l_src}
* ---- Miller compensation with nulling resistor, and load ----
Rz o1 cz {rz}
Cc cz out {cc}
Cl out 0 {cl}
* ---- open-loop bench: inputs at vcm, AC 1 on inp; DC-only servo with level shift
* (output settles at vcm - vshift) ----
Vinp inp 0 DC {vcm} AC 1
Vshift fb out DC {vshift}
Rfb fb inn 1g
Cfb inn 0 1
.end
