* charge_pump: PLL charge pump with mirrored PMOS/NMOS current sources, up/down switches and a second-order loop filter
.include ../models/ptm45.lib
.param iref=20u w_cn=1u w_cp=2u l_c=180n w_sw_n=400n w_sw_p=800n lmin=45n winv_n=200n winv_p=400n rz=10k cz=1p cp=100f rbleed=20meg
Vdd vdd 0 DC 1.0
* up pulses are wider than down pulses, so the control voltage ramps up
Vup up 0 PULSE(0 1.0 1n 20p 20p 400p 2n)
Vdn dn 0 PULSE(0 1.0 1n 20p 20p 150p 2n)
* bias: reference current into a diode NMOS, mirrored to a diode PMOS
Iref vdd vbn DC {iref}
Mbn1 vbn vbn 0 0 nmos45 w={w_cn} l={l_c}
Mbn2 vbp vbn 0 0 nmos45 w={w_cn} l={l_c}
Mbp1 vbp vbp vdd vdd pmos45 w={w_cp} l={l_c}
* up-switch drive is active low
Mpi up_n up vdd vdd pmos45 w={winv_p} l={lmin}
Mni up_n up 0 0 nmos45 w={winv_n} l={lmin}
* source branch: PMOS current source then PMOS switch
Msrc psrc vbp vdd vdd pmos45 w={w_cp} l={l_c}
Mswp out up_n psrc vdd pmos45 w={w_sw_p} l={lmin}
* sink branch: NMOS switch then NMOS current sink
Mswn out dn nsnk 0 nmos45 w={w_sw_n} l={lmin}
Msnk nsnk vbn 0 0 nmos45 w={w_cn} l={l_c}
* loop filter: series rz-cz plus ripple capacitor cp; large bleed divider defines the DC level
Rz out vz {rz}
Cz vz 0 {cz}
Cp out 0 {cp}
Rb1 vdd out {rbleed}
Rb2 out 0 {rbleed}
.end
