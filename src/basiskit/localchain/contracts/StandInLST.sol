// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

/// A liquid staking token standing in for weETH or wstETH on a local chain (basiskit's tests): ETH in at `rate`
/// (ETH per token, 18 decimals), tokens back to ETH at the same rate, at once. `mint` is a faucet, as Aave's
/// MintableERC20 test tokens have; the owner moves the rate and funds redemptions by sending ETH.
contract StandInLST {
    string public name;
    string public symbol;
    uint8 public constant decimals = 18;
    uint256 public totalSupply;
    uint256 public rate;
    address public immutable owner;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed holder, address indexed spender, uint256 value);

    constructor(string memory name_, string memory symbol_, uint256 rate_) {
        name = name_;
        symbol = symbol_;
        rate = rate_;
        owner = msg.sender;
    }

    receive() external payable {}

    function setRate(uint256 rate_) external {
        require(msg.sender == owner, "owner only");
        rate = rate_;
    }

    /// ETH in, tokens out: value / rate (EtherFi's deposit and wrap, Lido's submit and wrap, in one call).
    function deposit() external payable returns (uint256 shares) {
        shares = (msg.value * 1e18) / rate;
        _mint(msg.sender, shares);
    }

    /// Tokens in, ETH out at the rate, at once (the stand-in has no withdrawal queue).
    function redeem(uint256 shares) external returns (uint256 eth) {
        eth = (shares * rate) / 1e18;
        _burn(msg.sender, shares);
        (bool ok, ) = msg.sender.call{value: eth}("");
        require(ok, "ETH transfer failed");
    }

    function mint(address to, uint256 amount) external returns (bool) {
        _mint(to, amount);
        return true;
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            require(allowed >= amount, "allowance");
            allowance[from][msg.sender] = allowed - amount;
        }
        _move(from, to, amount);
        return true;
    }

    function _move(address from, address to, uint256 amount) internal {
        require(balanceOf[from] >= amount, "balance");
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }

    function _mint(address to, uint256 amount) internal {
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function _burn(address from, uint256 amount) internal {
        require(balanceOf[from] >= amount, "balance");
        balanceOf[from] -= amount;
        totalSupply -= amount;
        emit Transfer(from, address(0), amount);
    }
}
