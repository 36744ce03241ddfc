fn main() {
    println!("ferrocache");
}
